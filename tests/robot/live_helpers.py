"""Shared by the live-node tests: a tiny checkpoint, frames as ROS messages, waiting for output."""

from __future__ import annotations

import time

import numpy as np

from . import rosmsgs as R

H, W = 40, 56
FX, FY, CX, CY = 50.0, 52.0, 27.5, 19.5
NAMES = ["wall", "floor", "chair"]


def save_checkpoint(path):
    import torch

    import asymformer

    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=3).eval()
    info = model.info.replace(class_names=NAMES, colors=[[200, 0, 0], [0, 200, 0], [0, 0, 200]])
    asymformer.save_model(model, path, normalization="nyuv2_official", info=info)
    return path


def frame(i: int):
    """rgb uint8, depth uint16 mm (top rows invalid) for frame i."""
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mm = rng.integers(500, 4000, (H, W), dtype=np.uint16)
    mm[:4] = 0
    return rgb, mm


def stamp(i: int) -> int:
    return 1_700_000_000_000_000_000 + i * 33_333_333


def messages(i: int, compressed: bool = False):
    """(colour, depth, camera info) messages of frame i, as a driver would publish them."""
    rgb, mm = frame(i)
    if compressed:
        color = R.compressed(R.encode(rgb, "PNG"), "rgb8; png compressed rgb8", stamp(i))
        depth = R.compressed_depth_16(mm, "png", stamp(i))
    else:
        color, depth = R.image(rgb, "rgb8", stamp(i)), R.image(mm, "16UC1", stamp(i) + 2_000_000)
    return color, depth, R.camera_info(FX, FY, CX, CY, W, H, stamp(i))


def wait_for(cond, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def rrd_reader():
    """tests/outputs/rrd.py (the one .rrd reading helper), loaded by path: it is another test package."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("rrd_helper", Path(__file__).parents[1] / "outputs" / "rrd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
