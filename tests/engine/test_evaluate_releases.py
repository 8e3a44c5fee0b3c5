"""evaluate on a release written by the peers' tools: per-sensor scores, mIoU definitions, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import asymformer
from asymformer.cli import main

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "releases"


@pytest.fixture(scope="module")
def sun_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=37).eval()
    path = tmp_path_factory.mktemp("ck") / "sun.safetensors"
    asymformer.save_model(model, path, normalization="nyuv2_official",
                          metadata={"eval_size": [32, 48], "selected_on_split": "test"})
    return path


def test_per_sensor_miou_and_definitions(sun_checkpoint, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", str(sun_checkpoint), "--data", str(FIX / "nicr_sunrgbd"),
                 "--workers", "0", "--device", "cpu", "--out", str(out), "--save-predictions", "4"]) == 0
    text = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["size"] == [32, 48] and res["size_source"].startswith("checkpoint")  # default from the checkpoint
    assert set(res["per_sensor"]) == {"kv1", "kv2", "realsense", "xtion"}
    assert all(m["num_images"] == 1 for m in res["per_sensor"].values())
    assert sum(m["num_images"] for m in res["per_sensor"].values()) == res["num_images"] == 4
    # a random model on 4 frames: many classes never occur, so the three means differ and say so
    assert res["miou_all_classes"] <= res["miou"] and 0 <= res["miou_present"] <= 1
    assert "authors' definition" in text and "kv2" in text
    assert "selected as best on the test split" in res["warning"]
    # predictions keep the release's sensor sub-folders and the frame's own size
    labels = sorted((out / "predictions").rglob("*_labels.png"))
    assert len(labels) == 4 and labels[0].relative_to(out / "predictions").parts[0] == "kv1"


def test_sensor_subset_and_wrong_encoding_flags(sun_checkpoint, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(sun_checkpoint), "--data", str(FIX / "nicr_sunrgbd"),
                 "--workers", "0", "--device", "cpu", "--sensors", "kv2", "--size", "32x32",
                 "--out", str(tmp_path / "a")]) == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["num_images"] == 1 and list(res["per_sensor"]) == ["kv2"]
    assert main(["evaluate", "--checkpoint", str(sun_checkpoint), "--data", str(FIX / "nicr_sunrgbd"),
                 "--workers", "0", "--device", "cpu", "--depth-encoding", "linear"]) == 2
    assert "--depth-encoding sunrgbd_rotated" in capsys.readouterr().err
