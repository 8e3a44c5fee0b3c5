"""RerunView writes a recording that the pinned rerun-sdk reads back with the logged values:
images, depth, segmentation + annotation context, confidence, pinhole, points (the
back-projection of outputs.points), latency, on the frames' own stamps."""

from __future__ import annotations

import numpy as np
import pytest

from asymformer.outputs.points import Intrinsics, back_project
from asymformer.outputs.rerun_view import RerunView, scaled_intrinsics

from .rrd import image_of, read_rrd

NAMES = ["wall", "floor", "chair"]
COLORS = np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200]], np.uint8)
H, W = 12, 16
INTR = Intrinsics(20.0, 21.0, 7.5, 5.5)


def frames(n):
    rng = np.random.default_rng(3)
    for i in range(n):
        depth = rng.uniform(0.5, 4.0, (H, W)).astype(np.float32)
        depth[:2] = 0  # invalid rows: no points there
        yield (1_700_000_000_000_000_000 + i * 33_000_000, rng.integers(0, 256, (H, W, 3), dtype=np.uint8), depth,
               rng.integers(0, 3, (H, W)), rng.random((H, W)).astype(np.float32))


@pytest.mark.parametrize("stride", [1, 2])
def test_recording_reads_back_with_every_layer(tmp_path, stride):
    path = tmp_path / "run.rrd"
    data = list(frames(3))
    with RerunView(NAMES, COLORS, save=path, point_stride=stride) as view:
        for i, (stamp, rgb, depth, labels, conf) in enumerate(data):
            view.log(stamp, rgb, depth, labels, conf, INTR, latency_ms=40.0 + i, model_ms=30.0, dropped=i)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["run.rrd"]  # no temp file left
    rec = read_rrd(path)
    ctx = rec["/world"][0]["AnnotationContext:context"][0]
    assert [(c["class_id"], c["class_description"]["info"]["label"]) for c in ctx] == list(enumerate(NAMES))
    assert [c["class_description"]["info"]["color"] for c in ctx] == [0xC80000FF, 0x00C800FF, 0x0000C8FF]
    assert rec["/world/camera"][0]["ViewCoordinates:xyz"] == [[3, 2, 5]]  # right, down, forward
    pinhole = rec["/world/camera/image"]
    assert len(pinhole) == 1  # logged when it changes, not every frame
    assert pinhole[0]["Pinhole:image_from_camera"][0] == pytest.approx([20.0, 0, 0, 0, 21.0, 0, 7.5, 5.5, 1])
    for i, (stamp, rgb, depth, labels, conf) in enumerate(data):
        seg = rec["/world/camera/image/segmentation"][i]
        assert seg["frame"] == i and seg["stamp"] == stamp  # the frame's own timeline
        np.testing.assert_array_equal(image_of(seg, "SegmentationImage", np.uint8, (H, W)), labels)
        np.testing.assert_array_equal(image_of(rec["/world/camera/image/rgb"][i], "Image", np.uint8, (H, W, 3)), rgb)
        d = rec["/world/camera/image/depth"][i]
        np.testing.assert_array_equal(image_of(d, "DepthImage", np.float32, (H, W)), depth)
        assert d["DepthImage:meter"] == [1.0]
        np.testing.assert_array_equal(image_of(rec["/world/camera/image/confidence"][i], "Image", np.float32,
                                               (H, W)), conf)
        pts = rec["/world/camera/points"][i]
        want = back_project(depth[::stride, ::stride], scaled_intrinsics(INTR, stride, H, W),
                            labels[::stride, ::stride])
        np.testing.assert_allclose(np.array(pts["Points3D:positions"]), want.xyz, rtol=1e-6)
        assert pts["Points3D:class_ids"] == want.label.tolist() and len(want) == ((H - 2) * W) // stride ** 2
        assert rec["/stats/latency_ms"][i]["Scalars:scalars"] == [40.0 + i]
        assert rec["/stats/dropped"][i]["Scalars:scalars"] == [float(i)]


def test_strided_points_are_the_full_clouds_pixels():
    depth = np.random.default_rng(0).uniform(1, 2, (H, W)).astype(np.float32)
    labels = np.zeros((H, W), int)
    full = back_project(depth, INTR, labels)
    sub = back_project(depth[::2, ::2], scaled_intrinsics(INTR, 2, H, W), labels[::2, ::2])
    rows, cols = np.divmod(full.pixel, W)
    keep = (rows % 2 == 0) & (cols % 2 == 0)
    np.testing.assert_allclose(sub.xyz, full.xyz[keep], rtol=1e-6)


def test_without_intrinsics_no_pinhole_no_points(tmp_path):
    path = tmp_path / "flat.rrd"
    stamp, rgb, depth, labels, conf = next(frames(1))
    with RerunView(NAMES, COLORS, save=path) as view:
        view.log(stamp, rgb, depth, labels, conf)
    rec = read_rrd(path)
    assert "/world/camera/points" not in rec and "/world/camera/image" not in rec
    assert "/world/camera/image/segmentation" in rec


def test_bad_arguments_and_a_failed_run_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match="must end in .rrd"):
        RerunView(NAMES, COLORS, save=tmp_path / "x.mcap")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RerunView(NAMES, COLORS, save=tmp_path / "no" / "x.rrd")
    with pytest.raises(ValueError, match="nothing to do"):
        RerunView(NAMES, COLORS)
    with pytest.raises(ValueError, match="3 class names but 2 colours"):
        RerunView(NAMES, COLORS[:2], save=tmp_path / "x.rrd")
    with pytest.raises(RuntimeError), RerunView(NAMES, COLORS, save=tmp_path / "y.rrd") as view:
        view.log(*next(frames(1)))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_missing_rerun_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rerun", None)
    with pytest.raises(ImportError, match=r"pip install 'asymformer\[viewing\]'"):
        RerunView(NAMES, COLORS, save="x.rrd")
