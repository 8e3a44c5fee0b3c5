import json

import pytest
import torch

from asymformer.engine.config import TrainConfig, load_run_config, resolve_config, save_config
from asymformer.engine.distributed import ShardedSampler
from asymformer.engine.schedule import WarmupPoly, warmup_poly_factor


def test_defaults_are_the_paper_recipe():
    c = TrainConfig()
    assert (c.lr, c.weight_decay, c.batch_size, c.crop_size, c.poly_power) == (5e-5, 0.01, 8, (480, 640), 0.9)
    assert c.epochs == 500 and c.amp == "none" and c.scale_range == (1.0, 2.0)


def test_file_then_overrides_precedence_and_roundtrip(tmp_path):
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"lr": 1e-3, "epochs": 3, "crop_size": "96x128", "data": "d", "out": "o"}))
    c = resolve_config(f, {"epochs": 7, "batch_size": None})
    assert c.lr == 1e-3 and c.epochs == 7 and c.crop_size == (96, 128) and c.batch_size == 8
    save_config(c.validate(), tmp_path / "config.json")
    assert load_run_config(tmp_path) == c


def test_yaml_config(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "cfg.yaml"
    f.write_text("lr: 0.002\ncrop_size: [64, 96]\n")
    c = resolve_config(f)
    assert c.lr == 0.002 and c.crop_size == (64, 96)


def test_bad_config_errors_name_the_problem(tmp_path):
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"lrr": 1}))
    with pytest.raises(ValueError, match="lrr"):
        resolve_config(f)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        resolve_config(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="--amp"):
        TrainConfig(data="d", out="o", amp="fp8").validate()
    with pytest.raises(ValueError, match="--data"):
        TrainConfig(out="o").validate()


def test_warmup_then_poly_per_iteration():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = WarmupPoly(opt, total_iters=100, warmup_iters=10, start_factor=1e-3, power=0.9)
    lrs = []
    for _ in range(100):
        lrs.append(s.get_last_lr()[0])
        s.step()
    assert lrs[0] == pytest.approx(1e-4)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # linear warm-up
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.1 * (1 - 45 / 90) ** 0.9)
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))  # poly decay
    assert s.get_last_lr()[0] == 0.0
    # Resume continues the curve: no warm-up restart.
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s2 = WarmupPoly(opt2, 100, 10)
    s2.load_state_dict({**s.state_dict(), "iteration": 55})
    assert s2.get_last_lr()[0] == pytest.approx(lrs[55])
    assert warmup_poly_factor(0, 10, 0) == 1.0


def test_sharded_sampler_is_a_partition_and_resumable():
    full = ShardedSampler(10, seed=1, epoch=3).indices
    assert sorted(full) == list(range(10))
    assert full == ShardedSampler(10, seed=1, epoch=3).indices != ShardedSampler(10, seed=1, epoch=4).indices
    shards = [ShardedSampler(10, r, 3, seed=1, epoch=3).indices for r in range(3)]
    assert all(len(s) == 4 for s in shards) and set(sum(shards, [])) == set(range(10))
    assert ShardedSampler(10, seed=1, epoch=3, start=4).indices == full[4:]
    ev = [ShardedSampler(10, r, 3, shuffle=False, pad=False).indices for r in range(3)]
    assert sorted(sum(ev, [])) == list(range(10))


def test_yaml_values_are_converted_to_the_declared_types(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "recipe.yaml"
    # YAML 1.1 (PyYAML) reads 1e-3 and 5e-5 as strings; 1.0e+2 as a float; "yes" as a bool.
    f.write_text("lr: 1e-3\nweight_decay: 5e-5\nepochs: 1.0e+2\nbatch_size: '4'\ncrop_size: 64x96\n"
                 "scale_range: [1, 2]\nflip: 'no'\nnum_classes: null\ngrad_clip: 1\n")
    c = resolve_config(f)
    assert (c.lr, c.weight_decay, c.epochs, c.batch_size) == (0.001, 5e-5, 100, 4)
    assert type(c.lr) is float and type(c.epochs) is int and type(c.grad_clip) is float
    assert c.crop_size == (64, 96) and c.scale_range == (1.0, 2.0) and c.flip is False and c.num_classes is None
    for text, key in (("lr: fast\n", "lr"), ("epochs: 2.5\n", "epochs"), ("crop_size: 7\n", "crop_size"),
                      ("hsv: maybe\n", "hsv"), ("epochs: null\n", "epochs"), ("model_kwargs: [1]\n", "model_kwargs")):
        f.write_text(text)
        with pytest.raises(ValueError, match=rf"recipe\.yaml: {key}: "):
            resolve_config(f)


def test_saved_config_never_holds_per_invocation_limits(tmp_path):
    c = TrainConfig(data="d", out="o", stop_after=3, time_limit=5.0)
    save_config(c, tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["stop_after"] is None and saved["time_limit"] is None and saved["epochs"] == 500


def test_impossible_numbers_name_the_flag():
    base = dict(data="d", out="o")
    for key, value, flag in (("lr", float("nan"), "--lr"), ("lr", 0.0, "--lr"), ("grad_clip", -1.0, "--grad-clip"),
                             ("warmup_epochs", float("inf"), "--warmup-epochs"), ("stop_after", -2, "--stop-after"),
                             ("time_limit", 0.0, "--time-limit")):
        with pytest.raises(ValueError, match=flag):
            TrainConfig(**base, **{key: value}).validate()


def test_startup_warnings_for_plans_that_cannot_work():
    from asymformer.engine.summary import warnings_for

    c = TrainConfig(data="d", out="o", warmup_epochs=10, lr=1e-3)
    long_warmup = warnings_for(c, total=50, warmup=100, size=(480, 640), synthetic=False)
    assert len(long_warmup) == 1 and "longer than the whole run (50 iterations)" in long_warmup[0]
    small = warnings_for(c, total=500, warmup=100, size=(120, 160), synthetic=False)
    assert len(small) == 1 and "--base-size 120x160" in small[0] and "upscaled 4.0x" in small[0]
    assert warnings_for(c, total=500, warmup=100, size=(424, 560), synthetic=False) == []
    assert warnings_for(c, total=500, warmup=100, size=(96, 128), synthetic=True) == []
