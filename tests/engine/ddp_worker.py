"""Run under `torchrun --nproc_per_node 2` by test_distributed.py (not a test module itself).

Part A trains with the engine for a few steps on 2 gloo processes and records how far the ranks'
weights and buffers are apart, and the validation it ran on 3 images (an odd count: the shards are
2 + 1) next to the same weights scored by one process, image by image, without the engine's
loader. Part B compares DDP gradients (2 ranks × half batch) with one process on the whole batch,
BatchNorm in eval mode (per-rank BN statistics legitimately differ without SyncBN).
Part C gives rank 1 a NaN batch: both ranks must stop (rank 0 would otherwise hang in the
gradient all-reduce that rank 1 never joins).
"""

import copy
import json
import sys

import torch
import torch.distributed as dist

import asymformer
from asymformer.engine import ConfusionMatrix, TrainConfig, train, train_step
from asymformer.engine.builders import build_datasets
from asymformer.engine.train import prepare_model


def flat(tensors):
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


@torch.no_grad()
def score_alone(model, cfg) -> dict:
    """The validation split scored in this process only, one image at a time."""
    _, val, _ = build_datasets(cfg)
    model.eval()
    cm = ConfusionMatrix(val.num_classes)
    for i in range(len(val)):
        s = val[i]
        cm.update(model(s["rgb"][None], s["depth"][None]).argmax(1)[0], s["label"])
    return {**cm.compute(), "images": len(val)}


def main(out_json, run_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cpu = torch.device("cpu")
    result = {"world": world}

    cfg = TrainConfig(data="synthetic:8:3", out=run_dir, model="asymformer_b0_a", epochs=2, batch_size=4, lr=1e-3,
                      crop_size=(64, 64), base_size=(64, 64), eval_size=(64, 64), warmup_epochs=0.5,
                      val_every=1, workers=0, log_every=1, progress=False, tensorboard=False)
    res = train(cfg)
    params = flat(res["model"].parameters())
    gathered = [torch.zeros_like(params) for _ in range(world)]
    dist.all_gather(gathered, params)
    result["steps"] = res["iteration"]
    result["rank_weight_diff"] = float((gathered[0] - gathered[1]).abs().max())
    bufs = flat(res["model"].buffers())
    gb = [torch.zeros_like(bufs) for _ in range(world)]
    dist.all_gather(gb, bufs)
    result["rank_buffer_diff"] = float((gb[0] - gb[1]).abs().max())
    result["ddp_val"] = res["last_metrics"]
    if rank == 0:
        result["one_process_val"] = score_alone(res["model"], cfg)

    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=4).eval()
    reference = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    batch = {"rgb": torch.randn(4, 3, 64, 64, generator=g), "depth": torch.randn(4, 1, 64, 64, generator=g),
             "label": torch.randint(0, 4, (4, 64, 64), generator=g)}
    half = {k: v[rank * 2:(rank + 1) * 2] for k, v in batch.items()}
    _, ddp = prepare_model(model, TrainConfig(), cpu, world)
    ddp.eval()
    train_step(ddp, half, torch.optim.AdamW(model.parameters(), lr=1e-4), cpu)
    grads = flat([p.grad for p in model.parameters()])

    bad = {k: v.clone() for k, v in half.items()}
    if rank == 1:
        bad["rgb"][:] = float("nan")
    try:
        train_step(ddp, bad, torch.optim.AdamW(model.parameters(), lr=1e-4), cpu)
        result["nan_on_rank1_stopped_rank0"] = False
    except FloatingPointError:
        result["nan_on_rank1_stopped_rank0"] = True
    if rank == 0:
        train_step(reference, batch, torch.optim.AdamW(reference.parameters(), lr=1e-4), cpu)
        ref = flat([p.grad for p in reference.parameters()])
        result["grad_max_abs_diff"] = float((grads - ref).abs().max())
        result["grad_scale"] = float(ref.abs().max())
        result["weights_after_step_diff"] = float((flat(model.parameters()) - flat(reference.parameters())).abs().max())
        with open(out_json, "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
