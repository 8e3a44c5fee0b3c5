"""`RerunView`: a live (or recorded) Rerun view of RGB-D segmentation.

A robot engineer would rather look than read: the Rerun viewer shows, on the frames' own
timeline, the colour image, the depth in 3-D under the camera's pinhole, the segmentation with
class names and colours (an annotation context), the confidence, the semantic point cloud (class
ids, from the one back-projection in `outputs.points`) and the latency as a time series.

Entity layout (camera optical frame, x right, y down, z forward, as ROS camera frames):

    world                         annotation context (class id -> name, colour), static
    world/camera                  view coordinates RDF, static
    world/camera/image            pinhole (when intrinsics are known)
    world/camera/image/rgb        Image            .../depth  DepthImage (metres)
    world/camera/image/segmentation  SegmentationImage   .../confidence  Image (0..1 float)
    world/camera/points           Points3D with class ids (needs intrinsics)
    stats/latency_ms, stats/model_ms, stats/dropped   Scalars

Timelines: `frame` (sequence) and `stamp` (the frame's source stamp, nanoseconds). rerun-sdk
is imported only when a view is created (`pip install 'asymformer[viewing]'`, minor version
pinned: its API moves fast). A saved recording is written to a temporary name and renamed on
`close()`, so an interrupted run never leaves a half-written FILE.rrd under the name asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asymformer.files import temp_sibling

from .points import Intrinsics, back_project

RERUN_EXTRA = "the Rerun view needs rerun-sdk: pip install 'asymformer[viewing]'"


def _rerun():
    try:
        import rerun as rr
    except ImportError:
        raise ImportError(RERUN_EXTRA) from None
    return rr


def scaled_intrinsics(intr: Intrinsics, stride: int, height: int, width: int) -> Intrinsics:
    """The intrinsics of the image subsampled as [::stride, ::stride] (pixel u = stride * u')."""
    return Intrinsics(intr.fx / stride, intr.fy / stride, intr.cx / stride, intr.cy / stride,
                      width=-(-width // stride), height=-(-height // stride))


class RerunView:
    """Log segmented RGB-D frames to Rerun: `spawn` a viewer and/or `save` to FILE.rrd.

    class_names / colors: the model's (`Segmenter.class_names`, `Segmenter.colors`).
    point_stride: back-project every n-th pixel per axis (a 640×480 frame is 300 k points; the
    default 2 keeps a quarter, plenty to look at, and the file 4× smaller); max_depth in metres.
    """

    def __init__(self, class_names, colors, save=None, spawn: bool = False, app_id: str = "asymformer",
                 point_stride: int = 2, max_depth: float | None = None):
        if save is None and not spawn:
            raise ValueError("RerunView: nothing to do; pass save='FILE.rrd' and/or spawn=True")
        if not isinstance(point_stride, int) or point_stride < 1:
            raise ValueError(f"RerunView: point_stride must be an integer >= 1, got {point_stride!r}")
        self.rr = rr = _rerun()
        colors = np.asarray(colors, dtype=np.uint8)
        names = list(class_names) if class_names else [f"class {i}" for i in range(len(colors))]
        if len(names) != len(colors):
            raise ValueError(f"RerunView: {len(names)} class names but {len(colors)} colours")
        self.colors, self.class_names = colors, names
        self.point_stride, self.max_depth = point_stride, max_depth
        self.path = Path(save) if save is not None else None
        self._tmp = None
        self.rec = rr.RecordingStream(app_id)
        sinks = []
        if self.path is not None:
            if self.path.suffix != ".rrd":
                raise ValueError(f"--rerun-save {self.path}: the file name must end in .rrd")
            if not self.path.parent.is_dir():
                raise FileNotFoundError(f"--rerun-save {self.path}: folder {self.path.parent} does not exist")
            self._tmp = temp_sibling(self.path, ".tmp")
            sinks.append(rr.FileSink(str(self._tmp)))
        if spawn:
            self.rec.spawn(connect=False)
            sinks.append(rr.GrpcSink())
        self.rec.set_sinks(*sinks)
        self.rec.log("world", rr.AnnotationContext(
            [(i, n, tuple(int(c) for c in col)) for i, (n, col) in enumerate(zip(names, colors, strict=True))]),
            static=True)
        self.rec.log("world/camera", rr.ViewCoordinates.RDF, static=True)
        self._pinhole = None
        self.frames = 0

    def log(self, stamp_ns: int | None, rgb, depth_m, labels, confidence=None, intrinsics: Intrinsics | None = None,
            latency_ms: float | None = None, model_ms: float | None = None, dropped: int | None = None,
            index: int | None = None) -> None:
        """One frame: rgb H×W×3 uint8, depth_m H×W metres (0 = invalid), labels H×W class ids,
        confidence H×W in 0..1; intrinsics add the pinhole (3-D) and the point cloud. stamp_ns
        None (files without a time) logs on the `frame` timeline only."""
        rr, rec = self.rr, self.rec
        labels = np.asarray(labels)
        h, w = labels.shape
        rec.set_time("frame", sequence=self.frames if index is None else int(index))
        if stamp_ns is not None:
            rec.set_time("stamp", timestamp=np.datetime64(int(stamp_ns), "ns"))
        if intrinsics is not None:
            self._log_pinhole(intrinsics, h, w)
        seg = labels.astype(np.uint8 if len(self.colors) <= 256 else np.uint16)
        if rgb is not None:
            rec.log("world/camera/image/rgb", rr.Image(np.asarray(rgb)))
        if depth_m is not None:
            rec.log("world/camera/image/depth", rr.DepthImage(np.asarray(depth_m, dtype=np.float32), meter=1.0))
        rec.log("world/camera/image/segmentation", rr.SegmentationImage(seg))
        if confidence is not None:
            rec.log("world/camera/image/confidence", rr.Image(np.asarray(confidence, dtype=np.float32)))
        if intrinsics is not None and depth_m is not None:
            s = self.point_stride
            pts = back_project(np.asarray(depth_m)[::s, ::s], scaled_intrinsics(intrinsics, s, h, w),
                               labels[::s, ::s], None, self.colors, self.max_depth)
            rec.log("world/camera/points", rr.Points3D(pts.xyz, class_ids=pts.label.astype(np.uint16)))
        for name, value in (("latency_ms", latency_ms), ("model_ms", model_ms), ("dropped", dropped)):
            if value is not None:
                rec.log(f"stats/{name}", rr.Scalars(float(value)))
        self.frames += 1

    def log_result(self, result, intrinsics: Intrinsics | None = None, depth_m=None, dropped: int | None = None):
        """A `StreamResult` (asymformer.stream): its frame, labels, confidence, latency and model time.
        depth_m: the frame's depth in metres when the submitted depth was in another unit."""
        self.log(result.stamp_ns, result.rgb, result.depth if depth_m is None else depth_m, result.labels,
                 result.confidence, intrinsics, result.latency_ms, result.model_ms, dropped, result.index)

    def _log_pinhole(self, intr: Intrinsics, h: int, w: int) -> None:
        key = (intr.fx, intr.fy, intr.cx, intr.cy, h, w)
        if key == self._pinhole:
            return
        intr.check(h, w, "frame")
        self.rec.log("world/camera/image", self.rr.Pinhole(
            focal_length=[intr.fx, intr.fy], principal_point=[intr.cx, intr.cy], width=w, height=h,
            camera_xyz=self.rr.ViewCoordinates.RDF))
        self._pinhole = key

    def close(self) -> Path | None:
        """Flush, stop the sinks and move the recording to its name; returns its path."""
        if self.rec is None:
            return self.path
        self.rec.flush()
        self.rec.disconnect()
        self.rec = None
        if self._tmp is not None and self._tmp.exists():
            os.replace(self._tmp, self.path)
        return self.path

    def __enter__(self) -> RerunView:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # failed: keep nothing half-written under the name asked for
            if self.rec is not None:
                self.rec.disconnect()
                self.rec = None
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
