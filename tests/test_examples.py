"""examples/ run as a user runs them (a subprocess), at small sizes, with their outputs checked
against the Segmenter on the same pixels. camera_loop.py gets stand-ins for pyrealsense2 and
OpenCV (tests/fixtures/fake_camera) that serve two frames and record what was shown."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import asymformer
from asymformer import Segmenter

REPO = Path(__file__).resolve().parents[1]
FAKE_CAMERA = REPO / "tests" / "fixtures" / "fake_camera"
PALETTE = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 0], [0, 250, 250]], np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small model whose checkpoint records its own palette (the examples must draw with it)."""
    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=5).eval()
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    info = model.info.replace(class_names=["wall", "floor", "bed", "chair", "lamp"], colors=PALETTE.tolist())
    asymformer.save_model(model, path, normalization="nyuv2_official", info=info)
    return path


def _run(args, tmp_path, extra_path=()):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join([*map(str, extra_path), str(REPO / "src")]),
           "FAKE_CAMERA_OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_predict_pair_writes_the_segmenters_labels(checkpoint, tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (45, 71, 3), dtype=np.uint8)
    mm = rng.integers(500, 5000, (45, 71), dtype=np.uint16)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(mm).save(tmp_path / "depth.png")
    stdout = _run([REPO / "examples" / "predict_pair.py", checkpoint, "rgb.png", "depth.png", "out"], tmp_path)
    want = Segmenter(checkpoint, device="cpu")(rgb, mm)
    color = np.asarray(Image.open(tmp_path / "out" / "labels_color.png"))
    np.testing.assert_array_equal(color, PALETTE[want.labels])  # the checkpoint's palette, frame size
    blend = np.rint(rgb * 0.5 + PALETTE[want.labels].astype(np.float32) * 0.5)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "overlay.png")), blend)
    assert f"mean confidence {want.confidence.mean():.3f}" in stdout
    names = ["wall", "floor", "bed", "chair", "lamp"]
    counts = np.bincount(want.labels.ravel(), minlength=5)
    top = max(range(5), key=lambda c: counts[c])
    assert re.search(rf"largest classes \[\('{names[top]}', {counts[top]}\)", stdout), stdout


def test_camera_loop_shows_the_overlay_of_each_frame(checkpoint, tmp_path):
    """On the streaming runtime: each shown image is the overlay of one captured frame (the
    runtime may drop frames the model cannot keep up with, never show one twice or out of order),
    captioned with frames/s, latency and drops; q releases the camera."""
    stdout = _run([REPO / "examples" / "camera_loop.py", checkpoint, "--size", "48x64"], tmp_path,
                  extra_path=[FAKE_CAMERA])
    assert stdout == ""  # drawn on the image, not printed, when OpenCV is there
    captured = int((tmp_path / "stopped").read_text())
    assert captured >= 2  # q after the second shown frame releases the camera
    seg = Segmenter(checkpoint, device="cpu", size=(48, 64), depth_unit=0.0005)  # the camera's depth unit
    captions = (tmp_path / "captions.txt").read_text().splitlines()
    assert len(captions) == 2, captions
    assert all(re.fullmatch(r"\d+\.\d FPS \(fused\), latency \d+ ms, \d+ dropped", c) for c in captions), captions
    expected = []
    for j in range(captured):
        rgb = np.load(tmp_path / f"camera_rgb_{j}.npy")
        labels = seg(rgb, np.load(tmp_path / f"camera_depth_{j}.npy")).labels
        expected.append(np.rint(rgb * 0.5 + PALETTE[labels].astype(np.float32) * 0.5))
    shown_from = []
    for i in range(2):
        shown_rgb = np.load(tmp_path / f"shown_{i}.npy")[:, :, ::-1]  # OpenCV shows BGR
        shown_from.append(next(j for j, e in enumerate(expected) if np.array_equal(shown_rgb, e)))
    assert shown_from[0] < shown_from[1]


def test_camera_loop_replays_saved_frames_without_a_camera(checkpoint, tmp_path):
    """--rgb / --depth: the frame-folder alternative for users without a RealSense (no pyrealsense2 on the path)."""
    rng = np.random.default_rng(3)
    frames = []
    for name in ("a", "b"):
        rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        mm = rng.integers(500, 5000, (48, 64), dtype=np.uint16)
        Image.fromarray(rgb).save(tmp_path / f"{name}_rgb.png")
        Image.fromarray(mm).save(tmp_path / f"{name}_depth.png")
        frames.append((rgb, mm))
    cv2_only = tmp_path / "cv2_only"
    cv2_only.mkdir()
    (cv2_only / "cv2.py").write_text((FAKE_CAMERA / "cv2.py").read_text())
    _run([REPO / "examples" / "camera_loop.py", checkpoint, "--size", "48x64", "--rgb", "*_rgb.png", "--depth",
          "*_depth.png"], tmp_path, extra_path=[cv2_only])
    seg = Segmenter(checkpoint, device="cpu", size=(48, 64))
    for i, (rgb, mm) in enumerate(frames):
        labels = seg(rgb, mm).labels
        shown_rgb = np.load(tmp_path / f"shown_{i}.npy")[:, :, ::-1]
        np.testing.assert_array_equal(shown_rgb, np.rint(rgb * 0.5 + PALETTE[labels].astype(np.float32) * 0.5))


def test_segmenter_repr_is_short():
    seg = Segmenter(asymformer.create_model("asymformer_b0_a", num_classes=5), device="cpu", threads=1)
    text = repr(seg)
    assert "normalization='nyuv2_official'" in text and "threads=1" in text
    assert not re.search(r"\d\.\d{6,}", text), text  # no 16-digit floats
    seg.normalization = {"rgb_mean": [0.123456789, 0.5, 0.5], "rgb_std": [0.3, 0.3, 0.3], "depth_mean": 2.0,
                         "depth_std": 1.23456789}
    assert "0.1235" in repr(seg) and not re.search(r"\d\.\d{6,}", repr(seg))
