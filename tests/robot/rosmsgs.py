"""Test-side builders of sensor_msgs, from rosbags' typestores (ROS 2 Humble and ROS 1 Noetic), and
encoders written here from the formats' descriptions (not with our decoders): compressedDepth's
12-byte header + PNG / RVL, inverse-depth quantisation, padded and big-endian rows.

Reused by every robot test: build a message, decode it with asymformer.robot, compare with the
hand-made values.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image
from rosbags.typesys import Stores, get_typestore

TS2 = get_typestore(Stores.ROS2_HUMBLE)
TS1 = get_typestore(Stores.ROS1_NOETIC)
FRAME = "camera_color_optical_frame"


def header(stamp_ns: int, frame_id: str = FRAME, ts=TS2):
    t = ts.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    if ts is TS1:
        return ts.types["std_msgs/msg/Header"](seq=0, stamp=t, frame_id=frame_id)
    return ts.types["std_msgs/msg/Header"](stamp=t, frame_id=frame_id)


def image(arr: np.ndarray, encoding: str, stamp_ns: int = 0, pad: int = 0, bigendian: bool = False,
          frame_id: str = FRAME, ts=TS2):
    """A raw Image; `pad` extra bytes at the end of every row (step > width x bytes per pixel)."""
    a = np.asarray(arr)
    if a.dtype.itemsize > 1:
        a = a.astype(a.dtype.newbyteorder(">" if bigendian else "<"))
    h, w = a.shape[:2]
    row = a.reshape(h, -1).view(np.uint8)
    rows = np.concatenate([row, np.full((h, pad), 0xAB, np.uint8)], axis=1)  # padding bytes are garbage
    return ts.types["sensor_msgs/msg/Image"](header=header(stamp_ns, frame_id, ts), height=h, width=w,
                                             encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1],
                                             data=rows.reshape(-1).copy())


def compressed(data: bytes, fmt: str, stamp_ns: int = 0, frame_id: str = FRAME, ts=TS2):
    return ts.types["sensor_msgs/msg/CompressedImage"](header=header(stamp_ns, frame_id, ts), format=fmt,
                                                       data=np.frombuffer(data, np.uint8).copy())


def encode(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format=fmt, **kw)
    return b.getvalue()


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of uint16 values."""
    b = io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint16)).save(b, format="PNG")
    return b.getvalue()


def rvl_encode(values: np.ndarray) -> bytes:
    """RVL, written from the algorithm (Wilson 2017): runs of zeros / non-zeros, zigzag deltas,
    3-bit groups with a continuation bit, 8 nibbles per little-endian 32-bit word, high first."""
    flat = [int(v) for v in np.asarray(values, np.uint16).reshape(-1)]
    nibbles: list[int] = []

    def vle(v: int) -> None:
        while True:
            nib = v & 7
            v >>= 3
            nibbles.append(nib | (8 if v else 0))
            if not v:
                return

    i, prev = 0, 0
    while i < len(flat):
        z = 0
        while i + z < len(flat) and flat[i + z] == 0:
            z += 1
        vle(z)
        i += z
        nz = 0
        while i + nz < len(flat) and flat[i + nz] != 0:
            nz += 1
        vle(nz)
        for v in flat[i:i + nz]:
            d = v - prev
            vle((d << 1) ^ (d >> 31))  # zigzag: 2d for d >= 0, -2d - 1 below
            prev = v
        i += nz
    nibbles += [0] * (-len(nibbles) % 8)
    words = [sum(n << (28 - 4 * k) for k, n in enumerate(nibbles[j:j + 8])) for j in range(0, len(nibbles), 8)]
    h, w = np.asarray(values).shape
    return struct.pack("<II", w, h) + struct.pack(f"<{len(words)}I", *words)


def compressed_depth_16(mm: np.ndarray, codec: str = "png", stamp_ns: int = 0, ts=TS2):
    """compressed_depth_image_transport 16UC1: header (params unused, left as garbage) + payload."""
    payload = png16(mm) if codec == "png" else rvl_encode(mm)
    head = struct.pack("<iff", 0, 123.0, -7.0)
    return compressed(head + payload, f"16UC1; compressedDepth {codec}", stamp_ns, ts=ts)


def inverse_depth(depth_m: np.ndarray, depth_max: float = 10.0, z0: float = 100.0):
    """The publisher's quantisation: A = Z0 (Z0 + 1), B = 1 - A / depth_max, v = A / d + B (uint16),
    0 for d >= depth_max, NaN or <= 0. Returns (v, A, B)."""
    a = np.float32(z0 * (z0 + 1.0))
    b = np.float32(1.0 - a / np.float32(depth_max))
    d = np.asarray(depth_m, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(d) & (d > 0) & (d < depth_max)
        v = np.where(ok, a / np.where(ok, d, 1) + b, 0)
    return v.astype(np.uint16), float(a), float(b)


def compressed_depth_32(depth_m: np.ndarray, codec: str = "png", depth_max: float = 10.0, z0: float = 100.0,
                        stamp_ns: int = 0, ts=TS2):
    v, a, b = inverse_depth(depth_m, depth_max, z0)
    payload = png16(v) if codec == "png" else rvl_encode(v)
    return compressed(struct.pack("<iff", 0, a, b) + payload, f"32FC1; compressedDepth {codec}", stamp_ns, ts=ts)


def camera_info(fx: float, fy: float, cx: float, cy: float, width: int, height: int, stamp_ns: int = 0,
                frame_id: str = FRAME, ts=TS2):
    k = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], np.float64)
    p = np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64)
    fields = dict(header=header(stamp_ns, frame_id, ts), height=height, width=width, distortion_model="plumb_bob",
                  binning_x=0, binning_y=0,
                  roi=ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                                    do_rectify=False))
    if ts is TS1:
        fields.update(D=np.zeros(5), K=k, R=np.eye(3).reshape(-1), P=p)
    else:
        fields.update(d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p)
    return ts.types["sensor_msgs/msg/CameraInfo"](**fields)
