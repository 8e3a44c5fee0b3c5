"""sensor_msgs <-> numpy, written once for rosbags' message classes and rclpy's.

Both libraries' messages have the same field names (`header.stamp.sec`, `encoding`, `step`,
`data`, `k` ...); only what `data` holds differs (a numpy array in rosbags, `array.array` or bytes
in rclpy), so reading goes through `codecs.as_bytes` and building goes through a `MessageTypes`,
which carries the classes and the one `pack` function the `data` fields want. ROS 1 spellings
read through rosbags (`K`, `header.seq`) are accepted too.

Decoded frames follow the package's data contract: colour H×W×3 uint8 RGB, depth H×W float32
metres with invalid = 0.0 (16UC1 / mono16 millimetres with 0 = invalid; 32FC1 metres with
NaN / ±inf / <= 0 invalid, REP 117/118).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from asymformer.outputs.points import Intrinsics, SemanticPoints, back_project  # numpy only: no torch

from .codecs import CorruptFrame, UnsupportedEncoding, as_bytes, decode_compressed_color, decode_compressed_depth

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "yuv422_yuy2")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
OUTPUTS = ("labels", "confidence", "overlay", "points")
CONFIDENCE_OUTPUTS = ("confidence", "points")  # the outputs that read the confidence map (points carry it)
# confidence images: 32FC1 softmax probability, or mono8 0-255 (what Nav2's semantic_segmentation_layer reads)
CONFIDENCE_ENCODINGS = ("32FC1", "mono8")

# sensor_msgs/PointField datatypes
FLOAT32, UINT32 = 7, 6
_FIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4"), ("label", "<u4"),
                        ("confidence", "<f4")])


def message_type(msg) -> str:
    """'Image', 'CompressedImage', 'CameraInfo', ... for rosbags ('sensor_msgs/msg/Image') and rclpy
    (class name) messages alike."""
    full = getattr(msg, "__msgtype__", None)
    return full.rsplit("/", 1)[-1] if full else type(msg).__name__


def is_compressed(msg) -> bool:
    """A CompressedImage (has `format`, no `encoding`)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def stamp_ns(msg_or_header) -> int:
    """Header stamp in nanoseconds, from a message or its header (sec/nanosec; ROS 1 secs/nsecs)."""
    header = getattr(msg_or_header, "header", msg_or_header)
    st = header.stamp
    if hasattr(st, "sec"):
        return int(st.sec) * 1_000_000_000 + int(st.nanosec)
    return int(st.secs) * 1_000_000_000 + int(st.nsecs)


def _rows(msg, channels: int, dtype: str) -> np.ndarray:
    """The H×W×C pixels of a raw Image, honouring `step` (padded rows) and `is_bigendian`."""
    h, w = int(msg.height), int(msg.width)
    dt = np.dtype(dtype)
    if dt.itemsize > 1:
        dt = dt.newbyteorder(">" if msg.is_bigendian else "<")
    row = w * channels * dt.itemsize
    step = int(msg.step) or row
    buf = as_bytes(msg.data)
    if h == 0 or w == 0:
        raise CorruptFrame(f"{msg.encoding} image of size {w}x{h} has no pixels")
    if step < row:
        raise CorruptFrame(f"{msg.encoding} image: step {step} is shorter than a row of {w} pixels ({row} bytes)")
    if buf.size < step * (h - 1) + row:
        raise CorruptFrame(f"{msg.encoding} image {w}x{h}: {buf.size} bytes of data, expected step x height = "
                           f"{step * h} (truncated)")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1))
    out = np.array(rows).view(dt).reshape(h, w, channels)  # a writable copy: torch warns on read-only arrays
    return out.astype(dt.newbyteorder("="), copy=False) if dt.itemsize > 1 else out


def decode_color(msg) -> np.ndarray:
    """Image (rgb8 bgr8 rgba8 bgra8 mono8, yuv422 / yuv422_yuy2) or CompressedImage (jpeg/png/tiff)
    -> H×W×3 uint8 RGB."""
    if is_compressed(msg):
        return decode_compressed_color(msg.format, msg.data)
    enc = msg.encoding
    if enc in ("rgb8", "bgr8"):
        px = _rows(msg, 3, "u1")
        return px if enc == "rgb8" else np.ascontiguousarray(px[..., ::-1])
    if enc in ("rgba8", "bgra8"):
        px = _rows(msg, 4, "u1")
        return np.ascontiguousarray(px[..., :3] if enc == "rgba8" else px[..., 2::-1])
    if enc == "mono8":
        return np.repeat(_rows(msg, 1, "u1"), 3, axis=2)
    if enc in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        return _yuv422(_rows(msg, 2, "u1"), uyvy=enc in ("yuv422", "uyvy"))
    hint = "; it is a depth encoding: pass this topic as the depth topic" if enc in DEPTH_ENCODINGS else ""
    raise UnsupportedEncoding(f"colour image encoding {enc!r} is not supported{hint}; accepted: "
                              f"{', '.join(COLOR_ENCODINGS)}, or a CompressedImage (jpeg, png)")


def _yuv422(px: np.ndarray, uyvy: bool) -> np.ndarray:
    """4:2:2 packed YUV (ROS `yuv422` = UYVY, `yuv422_yuy2` = YUYV: USB cameras, RealSense's YUYV
    option) -> RGB with the coefficients cv_bridge's OpenCV conversion uses."""
    if px.shape[1] % 2:
        raise CorruptFrame(f"4:2:2 YUV image of odd width {px.shape[1]}")
    luma, chroma = (px[..., 1], px[..., 0]) if uyvy else (px[..., 0], px[..., 1])
    y = luma.astype(np.float32)
    u = np.repeat(chroma[:, 0::2], 2, axis=1).astype(np.float32) - 128
    v = np.repeat(chroma[:, 1::2], 2, axis=1).astype(np.float32) - 128
    rgb = np.stack([y + 1.403 * v, y - 0.714 * v - 0.344 * u, y + 1.773 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def decode_depth(msg) -> np.ndarray:
    """Image (16UC1 / mono16 millimetres, 32FC1 metres) or CompressedImage (compressedDepth png/rvl)
    -> H×W float32 metres, invalid (0, NaN, ±inf, negative) = 0.0."""
    if is_compressed(msg):
        return decode_compressed_depth(msg.format, msg.data)
    enc = msg.encoding
    if enc in ("16UC1", "mono16"):
        return _rows(msg, 1, "u2")[..., 0].astype(np.float32) * np.float32(0.001)
    if enc == "32FC1":
        d = _rows(msg, 1, "f4")[..., 0].astype(np.float32)
        with np.errstate(invalid="ignore"):
            d[~np.isfinite(d) | (d < 0)] = 0.0
        return d
    hint = "; it is a colour encoding: pass this topic as the colour topic" if enc in COLOR_ENCODINGS else ""
    raise UnsupportedEncoding(f"depth image encoding {enc!r} is not supported{hint}; accepted: 16UC1 / mono16 "
                              "(millimetres), 32FC1 (metres), or a CompressedImage with compressedDepth")


def camera_intrinsics(msg) -> Intrinsics:
    """CameraInfo -> Intrinsics from `k` (ROS 2) or `K` (ROS 1): fx = k[0], fy = k[4], cx = k[2],
    cy = k[5], with the image size. ValueError when uncalibrated (k[0] == 0), saying so."""
    k = getattr(msg, "k", None)
    k = getattr(msg, "K", None) if k is None else k
    k = np.asarray(k if k is not None else [], dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise ValueError(f"camera info has no 3x3 camera matrix k (got {k.size} values)")
    if k[0] == 0:
        raise ValueError("camera info is uncalibrated (k[0] == 0, all zeros as an uncalibrated driver publishes): "
                         "no points can be computed; calibrate the camera or pass --intrinsics fx,fy,cx,cy")
    w, h = int(getattr(msg, "width", 0) or 0), int(getattr(msg, "height", 0) or 0)
    return Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), w or None, h or None)


@dataclass(frozen=True)
class MessageTypes:
    """The message classes outputs are built from, and `pack`: uint8 array -> what `data` wants."""

    Header: Any
    Time: Any
    Image: Any
    PointCloud2: Any
    PointField: Any
    String: Any
    pack: Callable[[np.ndarray], Any]
    LabelInfo: Any = None  # vision_msgs (registered in rosbags' typestore; with rclpy only if installed)
    VisionClass: Any = None

    @classmethod
    def from_typestore(cls, typestore) -> MessageTypes:
        """rosbags: `MessageTypes.from_typestore(get_typestore(Stores.ROS2_HUMBLE))`."""
        t = typestore.types
        return cls(t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"], t["sensor_msgs/msg/Image"],
                   t["sensor_msgs/msg/PointCloud2"], t["sensor_msgs/msg/PointField"], t["std_msgs/msg/String"],
                   lambda a: np.ascontiguousarray(a, dtype=np.uint8).reshape(-1),
                   t.get("vision_msgs/msg/LabelInfo"), t.get("vision_msgs/msg/VisionClass"))

    @classmethod
    def from_rclpy(cls) -> MessageTypes:
        """rclpy (a sourced ROS 2 installation): the generated message modules."""
        import array

        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import Image, PointCloud2, PointField
        from std_msgs.msg import Header, String

        try:  # vision_msgs has no PyPI wheel: LabelInfo only where a ROS 2 installation provides it
            from vision_msgs.msg import LabelInfo, VisionClass
        except ImportError:
            LabelInfo = VisionClass = None
        return cls(Header, Time, Image, PointCloud2, PointField, String,
                   lambda a: array.array("B", np.ascontiguousarray(a, dtype=np.uint8).tobytes()), LabelInfo,
                   VisionClass)

    def header(self, stamp: int, frame_id: str):
        return self.Header(stamp=self.Time(sec=int(stamp // 1_000_000_000), nanosec=int(stamp % 1_000_000_000)),
                           frame_id=frame_id)

    def image(self, header, array: np.ndarray, encoding: str):
        """H×W(×C) array -> Image with tight rows, little-endian."""
        a = np.ascontiguousarray(array)
        if a.dtype.itemsize > 1:
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h, w = a.shape[:2]
        return self.Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                          step=w * (a.shape[2] if a.ndim == 3 else 1) * a.dtype.itemsize,
                          data=self.pack(a.view(np.uint8).reshape(-1)))

    def point_cloud(self, header, points: SemanticPoints):
        """Unordered PointCloud2: x y z float32, rgb float32 holding 0x00RRGGBB (PCL / rviz), label
        uint32, confidence float32; 24 bytes a point, only valid points, so is_dense."""
        rec = np.empty(len(points), POINT_DTYPE)
        rec["x"], rec["y"], rec["z"] = points.x, points.y, points.z
        rgb = points.rgb.astype(np.uint32)
        rec["rgb"] = ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).view(np.float32)
        rec["label"], rec["confidence"] = points.label, points.confidence
        fields = [self.PointField(name=n, offset=POINT_DTYPE.fields[n][1], datatype=UINT32 if n == "label" else FLOAT32,
                                  count=1) for n in POINT_DTYPE.names]
        return self.PointCloud2(header=header, height=1, width=len(rec), fields=fields, is_bigendian=False,
                                point_step=POINT_DTYPE.itemsize, row_step=POINT_DTYPE.itemsize * len(rec),
                                data=self.pack(rec.view(np.uint8).reshape(-1)), is_dense=True)


def read_points(msg) -> np.ndarray:
    """PointCloud2 -> a numpy structured array with one field per PointField (any layout, either
    byte order, padding honoured): for checking clouds and for consumers of ours."""
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _FIELD_DTYPES:
            raise ValueError(f"PointCloud2 field {f.name!r} has unknown datatype {f.datatype}")
        names.append(f.name)
        code = order + _FIELD_DTYPES[f.datatype]
        formats.append((code, (f.count,)) if f.count > 1 else code)
        offsets.append(f.offset)
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    n = int(msg.width) * int(msg.height)
    buf = as_bytes(msg.data)
    if msg.height > 1 and msg.row_step != msg.point_step * msg.width:
        rows = np.lib.stride_tricks.as_strided(buf, (msg.height, msg.point_step * msg.width), (msg.row_step, 1))
        buf = np.ascontiguousarray(rows).reshape(-1)
    return buf[:n * dt.itemsize].view(dt).copy()


def _label_encoding(num_classes: int) -> tuple[str, str]:
    return ("mono8", "u1") if num_classes <= 256 else ("mono16", "<u2")


def needs_confidence(outputs, view: bool = False) -> bool:
    """Whether a run publishing `outputs` (and a Rerun view, when `view`) reads the confidence map:
    computing it costs about half of the post-processing (benchmarks/postprocess.py)."""
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    return view or any(o in CONFIDENCE_OUTPUTS for o in outputs)


def output_messages(seg, header, types: MessageTypes, rgb=None, depth_m=None, intrinsics: Intrinsics | None = None,
                    outputs=OUTPUTS, class_colors=None, alpha: float = 0.5,
                    max_depth: float | None = None, confidence_encoding: str = "32FC1") -> dict[str, Any]:
    """A Segmentation of one frame -> {"labels": Image mono8 (mono16 past 256 classes), "confidence":
    Image 32FC1 (or mono8 0-255 with confidence_encoding="mono8"), "overlay": Image rgb8 (needs rgb),
    "points": PointCloud2 (needs depth_m and intrinsics)} for the keys in `outputs`, each with the
    colour frame's stamp and frame_id.

    class_colors (K×3, e.g. `Segmenter.colors`) fixes the class count, hence a stable label
    encoding across frames; without it the frame's largest label decides.
    """
    from asymformer import viz

    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)  # "points" is one key, not 6 letters
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if confidence_encoding not in CONFIDENCE_ENCODINGS:
        raise ValueError(f"confidence encoding must be one of {', '.join(CONFIDENCE_ENCODINGS)}, got "
                         f"{confidence_encoding!r}")
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose among {', '.join(OUTPUTS)}")
    labels = np.asarray(seg.labels)
    conf = None
    if needs_confidence(outputs):
        if seg.confidence is None:
            needing = [o for o in outputs if o in CONFIDENCE_OUTPUTS]
            raise ValueError(f"outputs {needing} need the confidence map, which this segmentation was made "
                             "without (StreamRunner(confidence=False)): keep it on")
        conf = np.asarray(seg.confidence, dtype=np.float32)
    colors = viz.palette(int(labels.max()) + 1) if class_colors is None else np.asarray(class_colors, np.uint8)
    hdr = types.header(stamp_ns(header), header.frame_id)
    out = {}
    for key in outputs:
        if key == "labels":
            enc, dt = _label_encoding(len(colors))
            out[key] = types.image(hdr, labels.astype(dt), enc)
        elif key == "confidence":
            if confidence_encoding == "mono8":
                out[key] = types.image(hdr, np.clip(np.rint(conf * 255), 0, 255).astype(np.uint8), "mono8")
            else:
                out[key] = types.image(hdr, conf.astype("<f4"), "32FC1")
        elif key == "overlay":
            if rgb is None:
                raise ValueError("output 'overlay' needs the colour frame (rgb=...)")
            out[key] = types.image(hdr, viz.overlay(rgb, viz.colorize(labels, colors), alpha), "rgb8")
        elif key == "points":
            if depth_m is None or intrinsics is None:
                raise ValueError("output 'points' needs depth_m and intrinsics (a camera-info topic or --intrinsics)")
            pts = back_project(depth_m, intrinsics, labels, conf, colors, max_depth)
            out[key] = types.point_cloud(hdr, pts)
    return out


def class_info_message(names, colors, types: MessageTypes):
    """std_msgs/String holding JSON {"classes": [{"id", "name", "color": [r, g, b]}], "label_encoding",
    "points_fields"}: what a viewer or a mapping node needs to read the labels and the cloud."""
    colors = np.asarray(colors, dtype=np.uint8)
    names = list(names) if names else [f"class_{i}" for i in range(len(colors))]
    if len(names) != len(colors):
        raise ValueError(f"{len(names)} class names but {len(colors)} colours")
    doc = {"classes": [{"id": i, "name": str(n), "color": [int(c) for c in colors[i]]} for i, n in enumerate(names)],
           "label_encoding": _label_encoding(len(colors))[0],
           "points_fields": "x y z float32 (optical frame, m), rgb float32 = 0x00RRGGBB, label uint32, "
                            "confidence float32"}
    return types.String(data=json.dumps(doc))


# vision_msgs/msg/LabelInfo (what Nav2's semantic_segmentation_layer and vision_msgs' README ask a
# segmentation node for, latched on `label_info`), for rosbags' typestore (robot/bags.ros2_typestore)
VISION_MSGS = {"vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
               "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\n"
                                            "float32 threshold\n"}


def label_info_message(names, header, types: MessageTypes, threshold: float = 0.0):
    """vision_msgs/LabelInfo: class id -> name for the label images; threshold 0 (every pixel is
    labelled with its arg-max class). None where the message type is not available."""
    if types.LabelInfo is None:
        return None
    classes = [types.VisionClass(class_id=i, class_name=str(n)) for i, n in enumerate(names)]
    return types.LabelInfo(header=header, class_map=classes, threshold=float(threshold))


__all__ = ["COLOR_ENCODINGS", "CONFIDENCE_ENCODINGS", "DEPTH_ENCODINGS",
           "OUTPUTS", "CONFIDENCE_OUTPUTS", "needs_confidence", "CorruptFrame", "MessageTypes", "UnsupportedEncoding",
           "camera_intrinsics", "class_info_message", "decode_color", "decode_depth", "is_compressed",
           "label_info_message", "message_type", "output_messages", "read_points", "stamp_ns"]
