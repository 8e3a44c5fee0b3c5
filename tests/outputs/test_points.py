"""Intrinsics parsing, the back-projection (checked against a per-pixel hand computation) and PLY files."""

from __future__ import annotations

import numpy as np
import pytest

from asymformer.deploy.segmenter import Segmentation
from asymformer.outputs.points import Intrinsics, back_project, write_ply


def _hand(depth, intr, labels, conf, colors, max_depth=None):
    """Per-pixel loop: the reference the vectorised code must equal."""
    rows = []
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            z = float(depth[v, u])
            if not np.isfinite(z) or z <= 0 or (max_depth is not None and z > max_depth):
                continue
            rows.append(((u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z, labels[v, u], conf[v, u],
                         *colors[labels[v, u]]))
    return np.array(rows, dtype=np.float64).reshape(-1, 8)


def _frame(h=5, w=6, seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 8, (h, w)).astype(np.float32)
    depth[0, 0], depth[0, 1], depth[1, 0], depth[1, 1], depth[2, 2] = 0, np.nan, np.inf, -np.inf, -1
    labels = rng.integers(0, 4, (h, w))
    return depth, labels, rng.random((h, w)).astype(np.float32), rng.integers(0, 256, (4, 3)).astype(np.uint8)


@pytest.mark.parametrize("max_depth", [None, 4.0])
def test_back_project_equals_a_hand_computation_and_drops_invalid_depth(max_depth):
    depth, labels, conf, colors = _frame()
    intr = Intrinsics(4.5, 5.5, 2.7, 2.1)
    pts = back_project(depth, intr, labels, conf, colors, max_depth)
    ref = _hand(depth, intr, labels, conf, colors, max_depth)
    assert len(pts) == len(ref) and (max_depth is not None or len(ref) == depth.size - 5)
    got = np.column_stack([pts.x, pts.y, pts.z, pts.label, pts.confidence, pts.rgb])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    assert np.isfinite(pts.xyz).all() and pts.xyz.dtype == np.float32
    np.testing.assert_array_equal(depth.ravel()[pts.pixel], pts.z)


def test_optical_frame_convention():
    """A pixel right of and below the principal point is at +x, +y (x right, y down, z forward)."""
    depth = np.zeros((3, 3), np.float32)
    depth[2, 2] = 2.0
    pts = back_project(depth, Intrinsics(1.0, 1.0, 1.0, 1.0), np.zeros((3, 3), int))
    assert (pts.x[0], pts.y[0], pts.z[0]) == (2.0, 2.0, 2.0)


def test_intrinsics_parse_yaml_and_errors(tmp_path):
    assert Intrinsics.parse("525, 525.5,319.5,239.5") == Intrinsics(525, 525.5, 319.5, 239.5)
    with pytest.raises(ValueError, match="four numbers fx,fy,cx,cy"):
        Intrinsics.parse("525,525")
    with pytest.raises(ValueError, match="fx and fy must be > 0"):
        Intrinsics.parse("0,525,1,1")
    calib = tmp_path / "cam.yaml"
    calib.write_text("image_width: 640\nimage_height: 480\ncamera_name: rgb\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     "  data: [517.3, 0, 318.6, 0, 516.5, 255.3, 0, 0, 1]\ndistortion_model: plumb_bob\n")
    assert Intrinsics.load(str(calib)) == Intrinsics(517.3, 516.5, 318.6, 255.3, 640, 480)
    info = tmp_path / "info.yaml"
    info.write_text("height: 48\nwidth: 64\nk: [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]\n")
    assert Intrinsics.from_yaml(info) == Intrinsics(50, 51, 32, 24, 64, 48)
    (tmp_path / "zero.yaml").write_text("camera_matrix:\n  data: [0, 0, 0, 0, 0, 0, 0, 0, 0]\n")
    with pytest.raises(ValueError, match="uncalibrated"):
        Intrinsics.from_yaml(tmp_path / "zero.yaml")
    (tmp_path / "bad.yaml").write_text("foo: 1\n")
    with pytest.raises(ValueError, match="no camera matrix found"):
        Intrinsics.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError):
        Intrinsics.from_yaml(tmp_path / "missing.yaml")


def test_intrinsics_of_another_resolution_are_refused():
    depth, labels, conf, colors = _frame()
    with pytest.raises(ValueError, match="intrinsics are for 640x480 images but the depth image is 6x5"):
        back_project(depth, Intrinsics(5, 5, 3, 2, 640, 480), labels, conf, colors)


def test_all_invalid_depth_gives_no_points():
    pts = back_project(np.full((4, 4), np.nan, np.float32), Intrinsics(2, 2, 2, 2), np.zeros((4, 4), int))
    assert len(pts) == 0 and pts.xyz.shape == (0, 3)


def test_write_ply_reads_back_with_plyfile(tmp_path):
    from plyfile import PlyData

    depth, labels, conf, colors = _frame()
    pts = back_project(depth, Intrinsics(4.5, 5.5, 2.7, 2.1), labels, conf, colors)
    path = write_ply(tmp_path / "a.ply", pts, class_names=["wall", "floor", "chair", "table"])
    assert (path.stat().st_mode & 0o777) != 0o600  # normal permissions, not the temp file's
    ply = PlyData.read(str(path))
    assert ply.header.splitlines()[1] == "format binary_little_endian 1.0"
    assert "class 2 chair" in ply.comments
    v = ply["vertex"]
    types = {p.name: p.val_dtype for p in v.properties}
    assert types == {"x": "f4", "y": "f4", "z": "f4", "red": "u1", "green": "u1", "blue": "u1", "label": "u1",
                     "confidence": "f4"}
    np.testing.assert_array_equal(v["z"], pts.z)
    np.testing.assert_array_equal(np.column_stack([v["red"], v["green"], v["blue"]]), pts.rgb)
    np.testing.assert_array_equal(v["label"], pts.label)
    np.testing.assert_array_equal(v["confidence"], pts.confidence)
    assert not list(tmp_path.glob(".a.ply*"))  # no temp file left


def test_ply_label_past_255_is_int_not_ushort(tmp_path):
    from plyfile import PlyData

    depth = np.ones((2, 2), np.float32)
    pts = back_project(depth, Intrinsics(1, 1, 0, 0), np.full((2, 2), 300), colors=np.zeros((301, 3), np.uint8))
    v = PlyData.read(str(write_ply(tmp_path / "b.ply", pts)))["vertex"]
    assert {p.name: p.val_dtype for p in v.properties}["label"] == "i4" and (v["label"] == 300).all()


def test_segmentation_points_method_uses_the_same_back_projection():
    depth, labels, conf, colors = _frame()
    seg = Segmentation(labels, conf)
    a = seg.points(depth, "4.5,5.5,2.7,2.1", colors=colors)
    b = back_project(depth, Intrinsics(4.5, 5.5, 2.7, 2.1), labels, conf, colors)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.label, b.label)
    with pytest.raises(ValueError, match="takes one frame"):
        Segmentation(labels[None], conf[None]).points(depth, "1,1,1,1")
