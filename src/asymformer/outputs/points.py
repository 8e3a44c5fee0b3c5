"""Semantic point clouds: camera intrinsics, the one back-projection, and PLY files.

One vectorised back-projection serves the PLY files `asymformer predict --intrinsics` writes,
the PointCloud2 messages of the robot tools (`asymformer.robot.messages`) and
`Segmentation.points`, so a point means the same thing everywhere. Points are in the camera's
optical frame as ROS camera frames and depth_image_proc's clouds are: x right, y down, z forward,
in metres. Only pixels with a finite depth > 0 (and <= max_depth) become points, so a cloud never
holds a NaN point and `is_dense` is true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the (colour) image in pixels; width/height, when known, are checked
    against the frames so intrinsics of another resolution never give silently wrong points."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int | None = None
    height: int | None = None

    def __post_init__(self):
        for name in ("fx", "fy", "cx", "cy"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
                raise ValueError(f"intrinsics: {name} must be a finite number, got {v!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics: fx and fy must be > 0 (pixels), got fx={self.fx}, fy={self.fy}; "
                             "a zero focal length means an uncalibrated camera")

    @classmethod
    def parse(cls, text: str) -> Intrinsics:
        """'fx,fy,cx,cy' (pixels), e.g. '525,525,319.5,239.5'."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(f"intrinsics {text!r}: expected four numbers fx,fy,cx,cy (pixels), e.g. "
                             "525,525,319.5,239.5, or a camera-info YAML file")
        return cls(*values)

    @classmethod
    def from_yaml(cls, path) -> Intrinsics:
        """A ROS camera calibration file (camera_calibration / camera_info_manager: `camera_matrix:
        data: [fx 0 cx 0 fy cy 0 0 1]`, `image_width`, `image_height`), or a CameraInfo written as
        YAML (`ros2 topic echo --once`: `k: [...]`, `width`, `height`)."""
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"intrinsics file not found: {p}")
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: not a YAML file ({str(exc).splitlines()[0]})") from None
        doc = doc if isinstance(doc, dict) else {}
        k = (doc.get("camera_matrix") or {}).get("data") if isinstance(doc.get("camera_matrix"), dict) else None
        k = k if k is not None else doc.get("k", doc.get("K"))
        try:
            k = [float(v) for v in k]
        except (TypeError, ValueError):
            k = []
        if len(k) != 9:
            raise ValueError(f"{p}: no camera matrix found; expected camera_matrix: data: [fx, 0, cx, 0, fy, cy, "
                             "0, 0, 1] (ROS camera calibration YAML) or k: [9 numbers] (CameraInfo)")
        if k[0] == 0:
            raise ValueError(f"{p}: the camera matrix is all zeros at fx: the camera is uncalibrated; "
                             "calibrate it (ros2 run camera_calibration cameracalibrator) or pass "
                             "--intrinsics fx,fy,cx,cy")
        w = doc.get("image_width", doc.get("width")) or None
        h = doc.get("image_height", doc.get("height")) or None
        return cls(k[0], k[4], k[2], k[5], int(w) if w else None, int(h) if h else None)

    @classmethod
    def load(cls, spec) -> Intrinsics:
        """`--intrinsics`: 'fx,fy,cx,cy' or a YAML file path."""
        if isinstance(spec, Intrinsics):
            return spec
        text = str(spec)
        if text.lower().endswith((".yaml", ".yml")) or Path(text).is_file():
            return cls.from_yaml(text)
        return cls.parse(text)

    def check(self, height: int, width: int, what: str = "frame") -> None:
        """Refuse frames of another resolution than the calibration's."""
        if self.width and self.height and (self.width, self.height) != (width, height):
            raise ValueError(f"the intrinsics are for {self.width}x{self.height} images but the {what} is "
                             f"{width}x{height}; use the camera info of this image stream (for depth "
                             "registered to colour: the colour camera's)")
        if not (0 <= self.cx <= width and 0 <= self.cy <= height):  # no size given ('fx,fy,cx,cy'): a sanity bound
            raise ValueError(f"the intrinsics' principal point (cx={self.cx:g}, cy={self.cy:g}) lies outside the "
                             f"{what} ({width}x{height}): they are for another resolution; scale fx,fy,cx,cy by "
                             "the size ratio or use the camera info of this image stream")


@dataclass
class SemanticPoints:
    """N labelled points: x, y, z float32 metres (optical frame), label int64, confidence
    float32, rgb N×3 uint8 (the class colour), pixel N int64 (row-major index into the image,
    to look up anything else per point, e.g. the photo's colour)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    rgb: np.ndarray
    pixel: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def xyz(self) -> np.ndarray:
        """N×3 float32."""
        return np.stack([self.x, self.y, self.z], axis=1)


def back_project(depth_m, intrinsics: Intrinsics, labels, confidence=None, colors=None,
                 max_depth: float | None = None) -> SemanticPoints:
    """Pixels with valid depth -> labelled 3-D points: x = (u - cx) z / fx, y = (v - cy) z / fy.

    depth_m: H×W metres (0, NaN, ±inf, negative = invalid); labels H×W class ids; confidence H×W
    (default 1); colors K×3 uint8 class colours (default the standard palette). max_depth drops
    points farther than that many metres (None keeps every valid one).
    """
    from asymformer.viz import VOID, palette

    depth = np.asarray(depth_m)
    labels = np.asarray(labels)
    if depth.ndim != 2 or labels.shape != depth.shape:
        raise ValueError(f"back_project: depth {depth.shape} and labels {labels.shape} must be the same H×W")
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        raise ValueError(f"max_depth must be a positive number of metres, got {max_depth}")
    intrinsics.check(depth.shape[0], depth.shape[1], "depth image")
    h, w = depth.shape
    z_img = depth.astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z_img) & (z_img > 0)
        if max_depth is not None:
            valid &= z_img <= max_depth
    # per-column / per-row factors and boolean masks: fancy indexing or u = i % w, v = i // w on
    # every point cost 5-10x more at 480x640
    fx_u = (np.arange(w, dtype=np.float32) - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx)
    fy_v = (np.arange(h, dtype=np.float32) - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy)
    z = z_img[valid]
    x = np.broadcast_to(fx_u, (h, w))[valid] * z
    y = np.broadcast_to(fy_v[:, None], (h, w))[valid] * z
    pixel = np.flatnonzero(valid)
    lab = labels[valid].astype(np.int64, copy=False)
    conf = (np.ones(len(z), np.float32) if confidence is None
            else np.asarray(confidence, dtype=np.float32)[valid])
    if colors is None:
        colors = palette(int(labels.max()) + 1 if labels.size else 0)
    colors = np.asarray(colors, dtype=np.uint8)
    if lab.size and int(lab.max()) >= len(colors):
        bad = (lab >= len(colors)) & (lab != VOID)
        if bad.any():
            raise ValueError(f"back_project: label {int(lab[bad][0])} has no colour ({len(colors)} colours given)")
    lut = np.zeros((max(len(colors), VOID + 1), 3), np.uint8)  # void (255) stays black
    lut[:len(colors)] = colors
    rgb = lut.take(lab, axis=0)
    return SemanticPoints(x, y, z, lab, conf, rgb, pixel)


def ply_vertices(points: SemanticPoints) -> np.ndarray:
    """The PLY vertex record: x y z float, red green blue uchar (class colour), label uchar while
    every id fits in 0..255 else int (Open3D's tensor reader skips ushort), confidence float
    (MeshLab reads it as quality)."""
    label_type = "u1" if len(points) == 0 or int(points.label.max()) <= 255 else "<i4"
    dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
             ("label", label_type), ("confidence", "<f4")]
    v = np.empty(len(points), dtype=dtype)
    v["x"], v["y"], v["z"] = points.x, points.y, points.z
    v["red"], v["green"], v["blue"] = points.rgb[:, 0], points.rgb[:, 1], points.rgb[:, 2]
    v["label"], v["confidence"] = points.label, points.confidence
    return v


def write_ply(path, points: SemanticPoints, class_names=None, comments=()) -> Path:
    """Write the points as a binary little-endian PLY (atomic). Class names go into comment lines
    ("class 3 chair"), so the file says what its labels mean."""
    try:
        from plyfile import PlyData, PlyElement
    except ImportError:
        raise ImportError("writing PLY files needs plyfile: pip install 'asymformer[robots]'") from None
    from asymformer.files import atomic_write

    lines = ["written by asymformer (x right, y down, z forward: camera optical frame, metres)", *comments]
    lines += [f"class {i} {name}" for i, name in enumerate(class_names or [])]
    ply = PlyData([PlyElement.describe(ply_vertices(points), "vertex")], text=False, byte_order="<",
                  comments=[c.replace("\n", " ") for c in lines])
    with atomic_write(path) as f:
        ply.write(f)
    return Path(path)
