import json
import os
import shutil
import signal

import pytest
import torch

import asymformer
from asymformer.engine import train
from asymformer.engine.distributed import ShardedSampler

from .conftest import small_config


def _max_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def test_exact_resume_after_sigterm_mid_epoch(tiny_data, tmp_path):
    full = train(small_config(tiny_data, tmp_path / "full"))
    assert full["status"] == "finished" and full["iteration"] == 4

    def interrupt(iteration, loss):
        if iteration == 3:  # mid-epoch 2: SIGTERM as a cluster scheduler would send it
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "cut"
    part = train(small_config(tiny_data, run), on_step=interrupt)
    assert part["status"] == "stopped" and part["iteration"] == 3
    # Resume with a different worker count: data order and augmentation must not depend on it.
    rest = train(resume=str(run), overrides={"workers": 1})
    assert rest["status"] == "finished" and rest["iteration"] == 4
    assert _max_diff(full["model"], rest["model"]) == 0.0

    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    assert state["iteration"] == 4 and state["scheduler"]["iteration"] == 4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log if r["kind"] == "train"] == [1, 2, 3, 4]
    ref = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log if r["kind"] == "train"] == [r["loss"] for r in ref if r["kind"] == "train"]
    for name in ("last", "best"):
        m = asymformer.load_model(run / "checkpoints" / f"{name}.safetensors")
        assert m.info.class_names == ("a", "b", "c", "d") and m.info.normalization["name"] == "imagenet"
    assert _max_diff(asymformer.load_model(run / "checkpoints" / "last.safetensors"), rest["model"]) == 0.0
    assert (run / "curves.png").stat().st_size > 1000 and (run / "log.csv").is_file()
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-3


def test_corrupt_file_mid_training_names_it_and_resumes(tiny_data, tmp_path):
    cfg = small_config(tiny_data, tmp_path / "run", epochs=1, val_every=0)
    names = (tiny_data / "train.txt").read_text().split()
    victim = tiny_data / "rgb" / f"{names[ShardedSampler(8, seed=0, epoch=0).indices[5]]}.png"
    good = victim.read_bytes()

    def corrupt(iteration, loss):
        if iteration == 1:  # after the first batch: the file is read by the second one
            victim.write_bytes(good[:40])

    with pytest.raises(ValueError, match=str(victim.name)) as info:
        train(cfg, on_step=corrupt)
    assert "--resume" in str(info.value)
    assert torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)["iteration"] == 1
    victim.write_bytes(good)
    done = train(resume=str(tmp_path / "run"))
    assert done["status"] == "finished" and done["iteration"] == 2


def test_resume_refuses_recipe_changes_and_missing_state(tiny_data, tmp_path):
    cfg = small_config(tiny_data, tmp_path / "run", epochs=1, val_every=0, stop_after=0)
    assert train(cfg)["status"] == "stopped"
    with pytest.raises(ValueError, match="weight-decay: the optimiser and schedule state"):
        train(resume=str(tmp_path / "run"), overrides={"weight_decay": 0.5})
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    with pytest.raises(FileNotFoundError, match="state.pt"):
        train(resume=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        train(resume=str(tmp_path / "nothing"))


def test_time_limit_stops_resumably_then_resume_finishes(tiny_data, tmp_path):
    cfg = small_config(tiny_data, tmp_path / "run", epochs=2, val_every=0, time_limit=1e-6, crop_size=(32, 32),
                       base_size=(32, 32))
    first = train(cfg)
    assert first["status"] == "stopped" and first["iteration"] == 1  # the limit is checked after each step
    state = torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)
    assert state["iteration"] == 1
    done = train(resume=str(tmp_path / "run"))  # the limit was for the first invocation only
    assert done["status"] == "finished" and done["iteration"] == first["total_iterations"]


def test_resume_state_keeps_epoch_length_and_void_count_also_from_0_1_files(tmp_path):
    """iterations_per_epoch and void_batches are named fields of state.pt; files written by 0.1
    kept them in an "extra" dict, which load_state still reads (the resume checks need them)."""
    from asymformer.engine import checkpoint as ckpt
    from asymformer.engine.resume import saved_iterations_per_epoch
    from asymformer.engine.schedule import WarmupPoly
    from asymformer.files import torch_save

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ckpt.save_state(tmp_path / "state.pt", model=model, optimizer=opt, scheduler=WarmupPoly(opt, 100, 10),
                    scaler=None, iteration=30, best_miou=0.5, iterations_per_epoch=12, void_batches=2)
    state = ckpt.load_state(tmp_path / "state.pt")
    assert (state["iterations_per_epoch"], state["void_batches"], state["iteration"]) == (12, 2, 30)
    assert saved_iterations_per_epoch(state, saved_epochs=5) == 12  # not total_iters / epochs = 20
    old = {k: v for k, v in state.items() if k not in ("iterations_per_epoch", "void_batches")}
    torch_save({**old, "extra": {"iterations_per_epoch": 12, "void_batches": 2}}, tmp_path / "old.pt")
    state = ckpt.load_state(tmp_path / "old.pt")
    assert (state["iterations_per_epoch"], state["void_batches"]) == (12, 2) and "extra" not in state
