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
    info = model.info.replace(normalization="nyuv2_official", eval_size=(32, 48), selected_on_split="test")
    asymformer.save_model(model, path, info=info)
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


class _Ramp(torch.nn.Module):
    """Logits that are linear ramps across the width: exact under align_corners=True resizing only."""

    def forward(self, rgb, depth):
        b, _, h, w = rgb.shape
        x = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(b, 2, h, w).clone()
        x[:, 1] = 1 - x[:, 1]
        return x


def test_multiscale_resizes_back_with_align_corners_true_as_the_authors():
    from asymformer.engine.evaluate import predict_logits

    rgb, depth = torch.zeros(1, 3, 32, 48), torch.zeros(1, 1, 32, 48)
    summed = predict_logits(_Ramp(), rgb, depth, (32, 48), scales=(1.0, 1.2, 1.4))
    torch.testing.assert_close(summed, 3 * _Ramp()(rgb, depth), atol=1e-6, rtol=0)
    other = predict_logits(_Ramp(), rgb, depth, (32, 48), scales=(1.0, 1.4), ms_align_corners=False)
    assert (other - 2 * _Ramp()(rgb, depth)).abs().max() > 1e-3


def test_miou_definitions_on_a_hand_matrix():
    import numpy as np

    from asymformer.engine.metrics import metrics_from_confusion

    # 3 classes; class 2 never in the labels but predicted once; no class-3-like empty rows
    mat = np.array([[3, 0, 1], [0, 4, 0], [0, 0, 0]])
    m = metrics_from_confusion(mat)
    assert m["miou"] == pytest.approx((3 / 4 + 1 + 0) / 3)           # classes in labels or predictions
    assert m["miou_present"] == pytest.approx((3 / 4 + 1) / 2)       # classes in the labels
    m4 = metrics_from_confusion(np.pad(mat, ((0, 1), (0, 1))))        # + a class that never occurs
    assert m4["miou_all_classes"] == pytest.approx((3 / 4 + 1 + 0 + 0) / 4)  # authors: / K, absent = 0
    assert m4["miou"] == pytest.approx(m["miou"])
