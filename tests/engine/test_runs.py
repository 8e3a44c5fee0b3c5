"""Runs a team can rely on: stop and resume to the end, extend, change the lr, fine-tune, lock, void."""

import json
import os
import shlex
import stat

import pytest
import torch

import asymformer
from asymformer.cli import EXIT_STOPPED, main
from asymformer.engine import train
from asymformer.engine.schedule import warmup_poly_factor

from .conftest import small_config, write_tiny_layout

SMALL = dict(crop_size=(32, 32), base_size=(32, 32), eval_size=(32, 32), batch_size=2, val_every=0)
CLI_SMALL = ["--model", "asymformer_b0_a", "--batch-size", "2", "--lr", "1e-3", "--crop-size", "32x32",
             "--base-size", "32x32", "--eval-size", "32x32", "--workers", "0", "--val-every", "0", "--no-progress"]


@pytest.fixture
def data32(tmp_path):
    return write_tiny_layout(tmp_path / "data", n_train=4, n_test=1, size=(32, 32))


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _records(run, kind=None):
    def strict(value):  # NaN / Infinity are not JSON: fail loudly if one slipped in
        raise AssertionError(f"non-JSON number {value} in log.jsonl")

    lines = (run / "log.jsonl").read_text().splitlines()
    records = [json.loads(x, parse_constant=strict) for x in lines]
    return [r for r in records if kind is None or r["kind"] == kind]


def test_stop_after_then_the_printed_command_finishes_like_an_uninterrupted_run(data32, tmp_path, capsys, monkeypatch):
    # The CLI applies --threads auto ($OMP_NUM_THREADS); bit-identical results need the thread count
    # of the in-process run below (float sums depend on how the work is split).
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    full = train(small_config(data32, tmp_path / "full", **SMALL))
    assert full["status"] == "finished" and full["iteration"] == 4
    run = tmp_path / "cut"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"normalization": "imagenet", "scale_range": [1.0, 1.25], "tensorboard": False,
                               "log_every": 1, "warmup_epochs": 0.5, "epochs": 2}))
    old = os.umask(0o022)
    try:
        rc = main(["train", "--data", str(data32), "--out", str(run), "--config", str(cfg), "--stop-after", "1",
                   *CLI_SMALL])
        out = capsys.readouterr().out
        assert rc == EXIT_STOPPED == 75
        command = out.split("continue with: ")[1].strip()
        assert command == f"asymformer train --resume {shlex.quote(str(run))}"
        assert json.loads((run / "config.json").read_text())["stop_after"] is None  # never inherited
        argv = shlex.split(command)
        assert argv[0] == "asymformer" and main(argv[1:]) == 0  # the printed command, as printed
        assert "finished at iteration 4/4" in capsys.readouterr().out
    finally:
        os.umask(old)
    last = asymformer.load_model(run / "checkpoints" / "last.safetensors")
    assert _max_diff(full["model"].state_dict(), last.state_dict()) == 0.0
    # Every file the run wrote has the permissions a plain open() gives under umask 022.
    for name in ("checkpoints/state.pt", "checkpoints/last.safetensors", "config.json", "curves.png", "log.csv"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]


def test_extend_epochs_and_lower_lr_on_resume_with_notices(data32, tmp_path):
    run = tmp_path / "run"
    first = train(small_config(data32, run, epochs=1, **SMALL))
    assert first["status"] == "finished" and first["iteration"] == 2
    with pytest.raises(ValueError, match="weight-decay: the optimiser and schedule state") as info:
        train(resume=str(run), overrides={"weight_decay": 0.5, "epochs": 2})
    assert "--init-from" in str(info.value)
    with pytest.raises(ValueError, match="writes into its own directory"):
        train(resume=str(run), overrides={"out": str(tmp_path / "elsewhere")})
    done = train(resume=str(run), overrides={"epochs": 2, "lr": 5e-4})
    assert done["status"] == "finished" and done["iteration"] == 4 and done["total_iterations"] == 4
    notices = [r["message"] for r in _records(run, "notice")]
    assert any("extended from 1 to 2 epochs" in n for n in notices)
    assert any(n.startswith("lr changed on resume: 0.001 -> 0.0005") for n in notices)
    # Re-planned schedule: the poly decay of a 4-iteration run (warm-up 1) with the new base lr.
    lrs = {r["iteration"]: r["lr"] for r in _records(run, "train")}
    assert lrs[1] == pytest.approx(1e-3 * warmup_poly_factor(0, 2, 1))
    for it in (3, 4):
        assert lrs[it] == pytest.approx(5e-4 * warmup_poly_factor(it - 1, 4, 1), rel=1e-9)
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["lr"] == 5e-4
    # Shrinking below what was trained, or another dataset's classes: refused, config.json untouched.
    with pytest.raises(ValueError, match="already trained 4 iterations"):
        train(resume=str(run), overrides={"epochs": 1})
    other = write_tiny_layout(tmp_path / "data10", n_train=4, n_test=1, size=(32, 32), n_classes=10)
    with pytest.raises(ValueError, match="has 10 classes but the run .* was trained with 4"):
        train(resume=str(run), overrides={"data": str(other)})
    assert json.loads((run / "config.json").read_text()) == saved


def _source_model(num_classes=40):
    torch.manual_seed(123)
    return asymformer.create_model("asymformer_b0_a", num_classes=num_classes)


def test_finetune_10_classes_from_a_40_class_checkpoint(tmp_path, capsys):
    data = write_tiny_layout(tmp_path / "data", n_train=4, n_test=1, size=(32, 32), n_classes=10)
    src = _source_model()
    ours = tmp_path / "nyu40.safetensors"
    asymformer.save_model(src, ours, class_names=[f"c{i}" for i in range(40)], normalization="nyuv2_official")
    official = tmp_path / "ckpt_official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, official)
    ref = src.state_dict()
    for path in (ours, official):
        run = tmp_path / f"ft_{path.suffix[1:]}"
        rc = main(["train", "--data", str(data), "--out", str(run), "--init-from", str(path), "--stop-after", "0",
                   "--epochs", "1", *CLI_SMALL])
        out = capsys.readouterr().out
        assert rc == EXIT_STOPPED
        assert "classifier re-initialised" in out and "Decoder.linear_pred.weight" in out
        state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
        assert state["iteration"] == 0
        weights = state["model"]
        assert weights["Decoder.linear_pred.weight"].shape[0] == 10
        backbone = [k for k in ref if not k.startswith("Decoder.linear_pred.")]
        assert len(backbone) > 100 and all(torch.equal(weights[k], ref[k]) for k in backbone)
        norm = json.loads((run / "config.json").read_text())["normalization"]  # values from our file, a name from .pth
        assert (norm if isinstance(norm, str) else norm["name"]) == "nyuv2_official"
    # The fine-tuned run then trains (and resumes) normally on its 10 classes.
    assert main(["train", "--resume", str(tmp_path / "ft_safetensors")]) == 0
    model = asymformer.load_model(tmp_path / "ft_safetensors" / "checkpoints" / "last.safetensors")
    assert model.num_classes == 10 and model.info.class_names[:4] == ("a", "b", "c", "d")


def test_finetune_refuses_a_checkpoint_of_another_variant(tmp_path):
    data = write_tiny_layout(tmp_path / "data", n_train=4, n_test=1, size=(32, 32))
    path = tmp_path / "other.safetensors"
    asymformer.save_model(asymformer.create_model("asymformer_b0_a", num_classes=4, depth_in_chans=3), path)
    with pytest.raises(ValueError, match="do not fit asymformer_b0_a.*pass the matching --model"):
        train(small_config(data, tmp_path / "run", init_from=str(path), stop_after=0, **SMALL))


def test_all_void_frame_trains_to_the_end_and_void_evaluation_fails(tmp_path, capsys):
    data = write_tiny_layout(tmp_path / "data", n_train=3, n_test=1, size=(64, 32), void=(1,))
    yaml_cfg = tmp_path / "recipe.yaml"
    yaml_cfg.write_text("lr: 1e-3\nepochs: 1\nwarmup_epochs: 0\nnormalization: imagenet\nlog_every: 1\n"
                        "tensorboard: false\n")  # YAML 1.1 reads 1e-3 as a string
    run = tmp_path / "run"
    argv = [a for a in CLI_SMALL if a not in ("--lr", "1e-3")]
    argv[argv.index("--batch-size") + 1] = "1"
    for flag in ("--crop-size", "--base-size", "--eval-size"):  # 64x32: BatchNorm needs 2 values at 1/32
        argv[argv.index(flag) + 1] = "64x32"
    assert main(["train", "--data", str(data), "--out", str(run), "--config", str(yaml_cfg), *argv]) == 0
    out = capsys.readouterr().out
    assert "finished at iteration 3/3" in out and "without labelled pixels (s001)" in out
    assert json.loads((run / "config.json").read_text())["lr"] == 0.001
    train_log = _records(run, "train")
    assert train_log[0]["lr"] == 0.001
    assert [r["loss"] is None for r in train_log].count(True) == 1 and train_log[-1]["void_batches"] == 1
    assert all(r["loss"] > 0 for r in train_log if r["loss"] is not None)

    void_data = write_tiny_layout(tmp_path / "void", n_train=1, n_test=2, size=(32, 32), void=(0, 1, 2))
    out_dir = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(run / "checkpoints" / "last.safetensors"), "--data", str(void_data),
               "--size", "32x32", "--workers", "0", "--out", str(out_dir)])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar: one line
    assert rc == 2 and last.startswith("asymformer evaluate: error: ") and "has a labelled pixel" in last
    assert not (out_dir / "results.json").exists()


def test_divergence_names_the_iteration_and_resumes_with_a_lower_lr(data32, tmp_path):
    run = tmp_path / "run"

    def poison(iteration, loss):
        if iteration == 3:  # a blow-up after the epoch-1 checkpoint
            with torch.no_grad():
                next(p for n, p in model_ref["m"].named_parameters() if "rgb_stem" in n).fill_(float("nan"))

    model_ref = {"m": asymformer.create_model("asymformer_b0_a", num_classes=4)}
    with pytest.raises(FloatingPointError) as info:
        train(small_config(data32, run, **SMALL), model=model_ref["m"], on_step=poison)
    msg = str(info.value)
    assert msg.startswith("iteration 4 (epoch 2): the training loss became nan")
    assert "State saved at iteration 2" in msg and f"asymformer train --resume {run} --lr 0.0001" in msg
    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    assert state["iteration"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values()
                                           if v.is_floating_point())
    done = train(resume=str(run), overrides={"lr": 1e-4})
    assert done["status"] == "finished" and done["iteration"] == 4


def test_a_second_train_into_the_same_out_refuses(data32, tmp_path, capsys):
    import subprocess
    import sys

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom asymformer.files import DirLock\n"
                               f"DirLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc = main(["train", "--data", str(data32), "--out", str(run), "--epochs", "1", *CLI_SMALL])
        err = capsys.readouterr().err
        assert rc == 2 and f"in use by another `asymformer train` (pid {holder.pid})" in err
        assert not (run / "checkpoints").exists() and not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its process: the directory is usable at once.
    assert main(["train", "--data", str(data32), "--out", str(run), "--epochs", "1", "--stop-after", "0",
                 *CLI_SMALL]) == EXIT_STOPPED
