"""`train --tensorboard`: the event file holds loss, LR, mIoU, per-class IoU and prediction panels
beside log.jsonl (read back with TensorBoard's own EventAccumulator); curves in the asked format."""

import json

import pytest

from asymformer.cli import main

from .conftest import small_config

pytest.importorskip("tensorboard")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread here (the top-level conftest's `one_thread`)."""


def test_tensorboard_event_file_has_scalars_per_class_iou_and_panels(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from asymformer.engine import train

    run = tmp_path / "run"
    result = train(small_config(tiny_data, run, tensorboard=True, figure_format="svg"))
    assert result["status"] == "finished"
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "val/miou", "val/pixel_acc"} <= set(tags["scalars"])
    assert {f"val/iou/{name}" for name in "abcd"} <= set(tags["scalars"]), tags["scalars"]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["kind"] == "train"]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(losses, rel=1e-6)
    vals = [r for r in log if r["kind"] == "val"]
    assert [e.value for e in acc.Scalars("val/miou")] == pytest.approx([r["miou"] for r in vals], rel=1e-6)
    assert [e.step for e in acc.Scalars("val/miou")] == [r["iteration"] for r in vals]
    assert all(0.0 <= e.value <= 1.0 for e in acc.Scalars("val/iou/a"))
    assert {"val/panel_0", "val/panel_1"} <= set(tags["images"])
    panel = acc.Images("val/panel_0")
    assert len(panel) == len(vals) and panel[0].width > panel[0].height > 0  # rgb | depth | pred | truth
    assert (run / "curves.svg").read_text().count("<svg") == 1 and not (run / "curves.png").exists()


def test_train_cli_flags_reach_the_config(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"normalization": "imagenet", "scale_range": [1.0, 1.0], "log_every": 1}))
    assert main(["train", "--data", str(tiny_data), "--out", str(run), "--config", str(cfg), "--model",
                 "asymformer_b0_a", "--epochs", "1", "--batch-size", "4", "--crop-size", "64x64", "--base-size",
                 "64x64", "--eval-size", "64x64", "--workers", "0", "--no-tensorboard", "--figure-format", "pdf",
                 "--no-progress", "--threads", "1"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["tensorboard"] is False and saved["figure_format"] == "pdf"
    assert not (run / "tensorboard").exists() and (run / "curves.pdf").read_bytes().startswith(b"%PDF")
