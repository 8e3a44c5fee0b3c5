"""Recordings written inside the tests, with three independent writers: rosbags' rosbag2 (MCAP and
sqlite3), rosbags' ROS 1 writer, and Foxglove's mcap-ros2-support (its own CDR encoder, driven
by message definitions written out here by hand). Topics as realsense2_camera and the TUM RGB-D
benchmark publish them."""

from __future__ import annotations

import numpy as np

from . import rosmsgs as R

MS = 1_000_000
T0 = 1_700_000_000 * 10**9

RS_COLOR = "/camera/camera/color/image_raw"
RS_DEPTH = "/camera/camera/aligned_depth_to_color/image_raw"
RS_INFO = "/camera/camera/color/camera_info"
TUM_COLOR = "/camera/rgb/image_color"
TUM_DEPTH = "/camera/depth/image"
TUM_INFO = "/camera/rgb/camera_info"
IMAGE, COMPRESSED, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo"
K = (60.0, 61.0, 47.5, 31.5)  # fx fy cx cy for 64x96 frames


def scene(i: int, h: int = 64, w: int = 96):
    """A frame with structure (so labels vary), depth in millimetres with a band of holes."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255 // w + 20 * i) % 256, yy * 255 // h, ((xx + yy + 7 * i) % 64) * 4], -1).astype(np.uint8)
    mm = (800 + 30 * yy + 10 * xx + 50 * i).astype(np.uint16)
    mm[: h // 8] = 0
    return rgb, mm


def realsense(n: int = 4, h: int = 64, w: int = 96, color: str = "rgb8", depth: str = "16UC1", ts=R.TS2,
              jitter_ms=(0, 3, -2, 5), drop_depth=(), info=True, size_mismatch=False):
    """realsense2_camera-style messages: (topic, msgtype, t_ns, msg), in arrival order."""
    out = []
    for i in range(n):
        t = T0 + i * 33 * MS
        rgb, mm = scene(i, h, w)
        if color == "jpeg":
            c = R.compressed(R.encode(rgb, "JPEG", quality=95), "rgb8; jpeg compressed bgr8", t, ts=ts)
        else:
            c = R.image(rgb if color == "rgb8" else rgb[..., ::-1].copy(), color, t, ts=ts)
        out.append((RS_COLOR, COMPRESSED if color == "jpeg" else IMAGE, t + 2 * MS, c))
        if info:
            out.append((RS_INFO, INFO, t + 2 * MS, R.camera_info(*K, w, h, t, ts=ts)))
        if i in drop_depth:
            continue
        td = t + jitter_ms[i % len(jitter_ms)] * MS
        if size_mismatch:
            mm = np.zeros((h // 2, w // 2), np.uint16) + 1000
        d = (R.compressed_depth_16(mm, "png", td, ts=ts) if depth == "compressedDepth"
             else R.image(mm, depth, td, frame_id="camera_depth_optical_frame", ts=ts))
        out.append((RS_DEPTH, COMPRESSED if depth == "compressedDepth" else IMAGE, td + 4 * MS, d))
    return out


def tum(n: int = 4, h: int = 64, w: int = 96, ts=R.TS1):
    """TUM RGB-D style: rgb8 colour, 32FC1 metres with NaN holes, depth stamps ~10 ms off."""
    out = []
    for i in range(n):
        t = T0 + i * 33 * MS
        rgb, mm = scene(i, h, w)
        d = mm.astype(np.float32) / 1000
        d[mm == 0] = np.nan
        out.append((TUM_COLOR, IMAGE, t + MS, R.image(rgb, "rgb8", t, frame_id="/openni_rgb_optical_frame", ts=ts)))
        out.append((TUM_INFO, INFO, t + MS, R.camera_info(*K, w, h, t, frame_id="/openni_rgb_optical_frame", ts=ts)))
        td = t + 11 * MS
        out.append((TUM_DEPTH, IMAGE, td + MS, R.image(d, "32FC1", td, frame_id="/openni_rgb_optical_frame", ts=ts)))
    return out


def write_rosbag2(path, messages, storage: str = "mcap"):
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        for topic, msgtype, _, _ in messages:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=R.TS2)
        for topic, msgtype, t, msg in messages:
            w.write(conns[topic], t, R.TS2.serialize_cdr(msg, msgtype))
    return path


def write_ros1(path, messages, compression: str | None = None):
    """A ROS 1 bag; compression 'bz2' or 'lz4' as `rosbag record --bz2/--lz4` (TUM's are bz2)."""
    from rosbags.rosbag1 import Writer

    w = Writer(path)
    if compression:
        w.set_compression(Writer.CompressionFormat[compression.upper()])
    with w:
        conns = {}
        for topic, msgtype, _, _ in messages:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=R.TS1)
        for topic, msgtype, t, msg in messages:
            w.write(conns[topic], t, R.TS1.serialize_ros1(msg, msgtype))
    return path


# ROS 2 message definitions, written out as `ros2 interface show` / rosbag2's MCAP schemas give them
_SEP = "\n" + "=" * 80 + "\n"
_HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id" + _SEP + \
    "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec"
_DEFS = {
    IMAGE: "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\n"
           "uint8[] data" + _SEP + _HEADER,
    COMPRESSED: "std_msgs/Header header\nstring format\nuint8[] data" + _SEP + _HEADER,
    INFO: "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\nfloat64[9] k\n"
          "float64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\nsensor_msgs/RegionOfInterest roi" + _SEP
          + _HEADER + _SEP + "MSG: sensor_msgs/RegionOfInterest\nuint32 x_offset\nuint32 y_offset\nuint32 height\n"
          "uint32 width\nbool do_rectify",
}


def _as_dict(msg):
    """A rosbags message -> plain dicts / lists / bytes for Foxglove's encoder."""
    import dataclasses

    if dataclasses.is_dataclass(msg):
        return {f.name: _as_dict(getattr(msg, f.name)) for f in dataclasses.fields(msg)}
    if isinstance(msg, np.ndarray):
        return msg.tobytes() if msg.dtype == np.uint8 else msg.tolist()
    return msg


def write_foxglove_mcap(path, messages, short_names: bool = False, chunk_size: int = 1024 * 1024, crcs: bool = True):
    """A bare .mcap file written by Foxglove's mcap-ros2-support (zstd chunks with CRCs, its own CDR
    encoder); short_names: schemas named 'sensor_msgs/Image' as some tools write them; a small
    chunk_size gives a chunk every few messages (to damage one of them); crcs=False leaves them out."""
    from mcap_ros2.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f, chunk_size=chunk_size, enable_crcs=crcs)
        schemas = {t: w.register_msgdef(t.replace("/msg/", "/") if short_names else t, _DEFS[t])
                   for t in {m[1] for m in messages}}
        for topic, msgtype, t, msg in messages:
            w.write_message(topic, schemas[msgtype], _as_dict(msg), log_time=t, publish_time=t)
        w.finish()
    return path
