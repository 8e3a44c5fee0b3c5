"""Helpers for engine tests: a tiny on-disk dataset in the custom layout and a small config."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from asymformer.engine import TrainConfig


def write_tiny_layout(root, n_train=8, n_test=2, size=(64, 64), seed=0, n_classes=4, void=()):
    """Quadrant scenes: top/bottom differ by depth, left/right by colour; one-based labels.

    `n_classes` >= 4 lists more class names (the scenes use the first four); the frames whose
    index is in `void` have no labelled pixel at all.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    for sub in ("rgb", "depth", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    names = [f"s{i:03d}" for i in range(n_train + n_test)]
    for i, name in enumerate(names):
        cls = np.zeros((h, w), np.uint8)
        split = rng.integers(w // 4, 3 * w // 4)
        cls[:, split:] = 1
        cls[h // 2:] += 2
        rgb = (rng.random((h, w, 3)) * 80).astype(np.uint8)
        rgb[..., 0] += np.where(cls % 2 == 1, 150, 0).astype(np.uint8)
        depth_mm = np.where(cls >= 2, 3000, 1200).astype(np.uint16)
        label = cls + 1
        label[:2, :2] = 0  # a little void
        if i in void:
            label[:] = 0
        Image.fromarray(rgb).save(root / "rgb" / f"{name}.png")
        Image.fromarray(depth_mm).save(root / "depth" / f"{name}.png")
        Image.fromarray(label).save(root / "labels" / f"{name}.png")
    colors = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [90, 90, 90]] + [[10 * k, 50, 100] for k in range(n_classes - 4)]
    names_ = ["a", "b", "c", "d"] + [f"extra{k}" for k in range(n_classes - 4)]
    (root / "classes.json").write_text(json.dumps({"names": names_, "colors": colors, "depth_unit": 0.001}))
    (root / "train.txt").write_text("\n".join(names[:n_train]) + "\n")
    (root / "test.txt").write_text("\n".join(names[n_train:]) + "\n")
    return root


@pytest.fixture
def tiny_data(tmp_path):
    return write_tiny_layout(tmp_path / "data")


def small_config(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), model="asymformer_b0_a", epochs=2, batch_size=4, lr=1e-3,
                crop_size=(64, 64), base_size=(64, 64), eval_size=(64, 64), scale_range=(1.0, 1.25),
                warmup_epochs=0.5, val_every=1, workers=0, log_every=1, progress=False, tensorboard=False,
                normalization="imagenet")
    base.update(kw)
    return TrainConfig(**base)
