"""`asymformer train` options that change how training runs, each exercised through the CLI.

A spy on the RGB stem convolution records, for every training forward pass, the dtype and
memory format it computed in and whether deterministic algorithms were on, so each flag is
checked by what the training loop really did, not only by what the config file says.
"""

import importlib
import json
import re

import pytest
import torch

import asymformer
from asymformer.cli import EXIT_STOPPED, main
from asymformer.engine import checkpoint as ckpt

from .conftest import write_tiny_layout

train_module = importlib.import_module("asymformer.engine.train")  # the module, not engine.train()

SMALL = ["--model", "asymformer_b0_a", "--batch-size", "2", "--lr", "1e-3", "--warmup-epochs", "0",
         "--crop-size", "32x32", "--base-size", "32x32", "--eval-size", "32x32", "--workers", "0",
         "--val-every", "0", "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny steps gain nothing from a second thread, and on a loaded 2-core machine OpenMP barriers
    make them several times slower (as in tests/deploy/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data32(tmp_path):
    return write_tiny_layout(tmp_path / "data", n_train=4, n_test=1, size=(32, 32))


@pytest.fixture
def run_cli(data32, tmp_path):
    """train through main() with a config that keeps the run small (no TensorBoard, log every step)."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"tensorboard": False, "log_every": 1, "scale_range": [1.0, 1.0],
                               "normalization": "imagenet"}))

    def run(name, *flags, epochs=1):
        out = tmp_path / name
        rc = main(["train", "--data", str(data32), "--out", str(out), "--config", str(cfg), "--epochs", str(epochs),
                   *SMALL, *flags])
        return rc, out
    return run


@pytest.fixture
def spy(monkeypatch):
    """What the RGB stem conv saw in each training forward pass."""
    seen = []
    build = train_module.build_model

    def build_and_watch(config, num_classes):
        model = build(config, num_classes)

        def hook(module, inputs, output):
            if module.training:
                seen.append({"dtype": output.dtype,
                             "channels_last": not output.is_contiguous()
                             and output.is_contiguous(memory_format=torch.channels_last),
                             "weight_channels_last": not module.weight.is_contiguous(),
                             "deterministic": torch.are_deterministic_algorithms_enabled()})
        model.down_sample_1.rgb_stem[0].register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_module, "build_model", build_and_watch)
    return seen


@pytest.fixture
def restore_determinism():
    """train() switches deterministic algorithms on for the process; put the setting back."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _losses(run):
    return [json.loads(x)["loss"] for x in (run / "log.jsonl").read_text().splitlines() if '"train"' in x]


def test_amp_bf16_on_cpu_trains_under_bf16_autocast(run_cli, spy):
    rc, run = run_cli("bf16", "--amp", "bf16", "--device", "cpu")
    assert rc == 0
    assert len(spy) == 2 and all(s["dtype"] == torch.bfloat16 for s in spy)  # 4 frames / batch 2
    losses = _losses(run)
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)  # finite, sensible cross-entropy
    assert json.loads((run / "config.json").read_text())["amp"] == "bf16"
    model = asymformer.load_model(run / "checkpoints" / "last.safetensors")
    assert next(model.parameters()).dtype == torch.float32  # autocast: weights stay float32


def test_channels_last_reaches_the_weights_and_activations(run_cli, spy):
    rc, run = run_cli("cl", "--channels-last")
    assert rc == 0 and len(spy) == 2
    assert all(s["channels_last"] and s["weight_channels_last"] and s["dtype"] == torch.float32 for s in spy)
    assert json.loads((run / "config.json").read_text())["channels_last"] is True
    spy.clear()
    assert run_cli("cl_off", "--no-channels-last")[0] == 0  # the negative form: plain NCHW
    assert spy and not any(s["channels_last"] or s["weight_channels_last"] for s in spy)


def test_deterministic_runs_repeat_bit_for_bit(run_cli, spy, restore_determinism):
    torch.use_deterministic_algorithms(False)
    weights = []
    for name in ("a", "b"):
        rc, run = run_cli(name, "--deterministic", "--seed", "3")
        assert rc == 0
        weights.append(asymformer.load_model(run / "checkpoints" / "last.safetensors").state_dict())
    assert spy and all(s["deterministic"] for s in spy)  # the flag reached torch during training
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    start = asymformer.create_model("asymformer_b0_a", num_classes=4)
    assert any(not torch.equal(weights[0][k], v) for k, v in start.state_dict().items()
               if v.is_floating_point())  # it trained


def test_save_every_keeps_a_checkpoint_per_epoch(run_cli):
    rc, run = run_cli("every", "--save-every", "1", epochs=2)
    assert rc == 0
    names = sorted(p.name for p in (run / "checkpoints").glob("epoch_*.safetensors"))
    assert names == ["epoch_001.safetensors", "epoch_002.safetensors"]
    first, second = (asymformer.load_model(run / "checkpoints" / n) for n in names)
    assert first.info.training["epoch"] == 1 and second.info.training["epoch"] == 2
    last = asymformer.load_model(run / "checkpoints" / "last.safetensors").state_dict()
    assert all(torch.equal(v, last[k]) for k, v in second.state_dict().items())  # epoch 2 is the end
    assert any(not torch.equal(v, last[k]) for k, v in first.state_dict().items() if v.is_floating_point())


def _meta_convnext_names(model) -> dict:
    """A ConvNeXt file in Meta's naming (downsample_layers.i.j / stages.i.k) that fits `model`'s
    RGB branch, filled with random numbers: what convnext_*_1k_224_ema.pth looks like."""
    out, g = {}, torch.Generator().manual_seed(5)
    for key, value in model.state_dict().items():
        if m := re.fullmatch(r"down_sample_(\d)\.rgb_stem\.(\d)\.(weight|bias)", key):
            name = f"downsample_layers.{int(m[1]) - 1}.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"down_sample_(\d)\.rgb_layer\.(\d+)\.(.+)", key):
            name = f"stages.{int(m[1]) - 1}.{m[2]}.{m[3]}"
        else:
            continue
        out[name] = torch.randn(value.shape, generator=g)
    out["head.weight"] = torch.zeros(1000, value.shape[0])  # the ImageNet classifier is ignored
    return out


def test_pretrained_backbones_are_loaded_by_train(run_cli, tmp_path, refweights, reference_dir):
    rgb = _meta_convnext_names(asymformer.create_model("asymformer_b0_a", num_classes=4))
    torch.save({"model": rgb}, tmp_path / "convnext.pth")
    mit = refweights.state_dict(refweights.read_keys(reference_dir / "segformer_mit_b0_keys.txt"), seed=4)
    torch.save(mit, tmp_path / "mit_b0.pth")
    rc, run = run_cli("pre", "--pretrained-rgb", str(tmp_path / "convnext.pth"),
                      "--pretrained-depth", str(tmp_path / "mit_b0.pth"), "--stop-after", "0")
    assert rc == EXIT_STOPPED  # --stop-after 0: set up (weights loaded), save, stop before any step
    state = ckpt.load_state(run / "checkpoints" / ckpt.STATE_NAME)["model"]
    assert torch.equal(state["down_sample_3.rgb_layer.4.pwconv2.weight"], rgb["stages.2.4.pwconv2.weight"])
    assert torch.equal(state["down_sample_2.rgb_stem.1.weight"], rgb["downsample_layers.1.1.weight"])
    assert torch.equal(state["down_sample_4.depth_layer.1.mlp.fc2.weight"], mit["block4.1.mlp.fc2.weight"])
    summed = mit["patch_embed1.proj.weight"].sum(1, keepdim=True)  # 3-channel RGB kernel -> 1-channel depth
    torch.testing.assert_close(state["down_sample_1.depth_stem.proj.weight"], summed)
