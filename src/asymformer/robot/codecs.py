"""Decoding `sensor_msgs/CompressedImage` payloads: image_transport's `compressed` (jpeg / png /
tiff colour) and `compressedDepth` (16UC1 or 32FC1 inverse-depth, PNG or RVL), with Pillow and
numpy only, so no ROS or OpenCV is needed.

Formats follow image_transport_plugins (compressed_image_transport and
compressed_depth_image_transport: `compression_common.h`, `codec.cpp`, `rvl_codec.cpp`):
- `format` of colour: "ORIG; CODEC compressed PIXFMT" (e.g. "rgb8; jpeg compressed bgr8"),
  a bare codec ("jpeg", "png") from other publishers, or "" (jpeg). The PIXFMT only names
  OpenCV's in-memory order before encoding: the file itself decodes to the right RGB.
- `format` of depth: "16UC1; compressedDepth png" / "32FC1; compressedDepth png" (or `rvl`,
  or no codec in older releases = png). `data` starts with a 12-byte ConfigHeader (int32
  format, float32 depthParam[2], little-endian), then the payload.
"""

from __future__ import annotations

import io
import struct

import numpy as np

COLOR_CODECS = ("jpeg", "jpg", "png", "tiff", "tif", "webp", "bmp")
CONFIG_HEADER = 12  # compressed_depth_image_transport::ConfigHeader: int32 + 2 x float32


class UnsupportedEncoding(ValueError):
    """A message encoding or format this package does not read: every frame of the stream would fail."""


class CorruptFrame(ValueError):
    """One message's bytes cannot be decoded (truncated, corrupt): skip the frame, keep going."""


def as_bytes(data) -> np.ndarray:
    """A message's `data` field as a flat uint8 array without copying: numpy (rosbags),
    array.array / bytes (rclpy), or a list of ints."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def color_codec(fmt: str) -> str:
    """The codec named by a CompressedImage `format` of image_transport `compressed` ("" = jpeg)."""
    text = (fmt or "").strip()
    if "compresseddepth" in text.lower():
        return "compressedDepth"
    part = text.split(";", 1)[1] if ";" in text else text
    words = part.strip().split()
    return words[0].lower() if words else "jpeg"


def _open_image(payload: np.ndarray, what: str):
    from PIL import Image, UnidentifiedImageError

    if payload[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and payload[-8:-4].tobytes() != b"IEND":
        # zlib may inflate every row before the cut: Pillow would return a "complete" image
        raise CorruptFrame(f"{what}: truncated PNG ({payload.size} bytes, no IEND chunk at the end)")
    try:
        img = Image.open(io.BytesIO(payload.tobytes()))
        img.load()  # decodes now: a truncated file raises here, not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptFrame(f"{what}: cannot decode {payload.size} bytes ({exc})") from None
    return img


def decode_compressed_color(fmt: str, data) -> np.ndarray:
    """An image_transport `compressed` colour frame -> H×W×3 uint8 RGB."""
    codec = color_codec(fmt)
    if codec == "compressedDepth":
        raise UnsupportedEncoding(f"format {fmt!r} is compressed depth, not colour: pass this topic as the depth "
                                  "topic")
    if codec not in COLOR_CODECS:
        raise UnsupportedEncoding(f"compressed colour format {fmt!r} (codec {codec!r}) is not supported; accepted "
                                  f"codecs: {', '.join(COLOR_CODECS)} (image_transport 'compressed'); "
                                  "video streams (h264, ffmpeg) are not single images")
    img = _open_image(as_bytes(data), f"compressed colour ({fmt or 'jpeg'})")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.repeat((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)[..., None], 3, axis=2)
    return np.array(img.convert("RGB"))  # writable (torch warns on read-only arrays)


def _png16(payload: np.ndarray, fmt: str) -> np.ndarray:
    img = _open_image(payload, f"compressedDepth ({fmt})")
    if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise CorruptFrame(f"compressedDepth ({fmt}): the PNG is {img.mode}, expected 16-bit grey")
    return np.asarray(img).astype(np.uint16)


def rvl_decode(payload) -> np.ndarray:
    """RVL (Wilson 2017, compressed_depth_image_transport's `rvl`): uint32 cols, uint32 rows, then
    32-bit little-endian words of 4-bit nibbles, most significant first; each value is a run of
    3-bit groups (low first) with bit 3 meaning "more follows". The stream alternates a count of
    zeros, a count of non-zeros and that many zigzag-coded deltas. Nibbles are unpacked with numpy;
    only the runs are walked in Python."""
    buf = as_bytes(payload)
    if buf.size < 8:
        raise CorruptFrame(f"rvl depth: {buf.size} bytes, too short for its 8-byte size header")
    cols, rows = struct.unpack_from("<II", buf.tobytes()[:8])
    n = cols * rows
    if n == 0 or n > (1 << 28):
        raise CorruptFrame(f"rvl depth: implausible size {cols}x{rows}")
    body = buf[8:8 + 4 * ((buf.size - 8) // 4)]
    words = body.view("<u4").astype(np.uint32)
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    nibbles = ((words[:, None] >> shifts[None, :]) & 0xF).reshape(-1).astype(np.int64)
    ends = np.flatnonzero((nibbles & 8) == 0)
    if ends.size == 0:
        raise CorruptFrame("rvl depth: no complete value in the stream")
    starts = np.concatenate([[0], ends[:-1] + 1])
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    pos = np.arange(ends[-1] + 1) - starts[group]
    vals = np.bincount(group, weights=(nibbles[:ends[-1] + 1] & 7) * (8.0 ** pos)).astype(np.int64)
    out = np.zeros(n, np.uint16)
    i = p = 0
    prev = 0
    while p < n:
        if i + 2 > vals.size:
            raise CorruptFrame(f"rvl depth: the stream ends after {p} of {n} pixels (truncated)")
        zeros, nz = int(vals[i]), int(vals[i + 1])
        i += 2
        p += zeros
        if (zeros == 0 and nz == 0) or p + nz > n or i + nz > vals.size:
            raise CorruptFrame(f"rvl depth: corrupt run at pixel {p} of {n}")
        if nz:
            z = vals[i:i + nz]
            delta = (z >> 1) ^ -(z & 1)
            cur = (prev + np.cumsum(delta)) & 0xFFFF
            out[p:p + nz] = cur
            prev = int(cur[-1])
            i += nz
            p += nz
    return out.reshape(rows, cols)


def _depth_format(fmt: str) -> tuple[str, str]:
    """'32FC1; compressedDepth png' -> ('32FC1', 'png'); old releases wrote no codec (png)."""
    orig, _, rest = (fmt or "").partition(";")
    codec = rest.strip()[len("compressedDepth"):].strip().lower() or "png"
    return orig.strip(), codec


def decode_compressed_depth(fmt: str, data) -> np.ndarray:
    """A compressed depth frame -> H×W float32 metres, invalid = 0.

    compressedDepth 16UC1: the PNG (or RVL) holds the millimetres (the header's parameters are
    not always initialised and are ignored). 32FC1: the PNG holds v = A / d + B quantised to
    uint16 (0 = invalid), decoded d = A / (v - B) with (A, B) from the header, in float32 like the
    C++ decoder. A plain `compressed` 16-bit PNG ("16UC1; png compressed ...") is millimetres too.
    """
    buf = as_bytes(data)
    if "compresseddepth" not in (fmt or "").lower():
        codec = color_codec(fmt)
        orig = (fmt or "").split(";")[0].strip()
        if codec == "png" and orig in ("16UC1", "mono16", ""):
            img = _open_image(buf, f"compressed depth ({fmt})")
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(img).astype(np.float32) * np.float32(0.001)
        raise UnsupportedEncoding(f"compressed depth format {fmt!r} is not supported; accepted: "
                                  "'16UC1; compressedDepth png|rvl', '32FC1; compressedDepth png|rvl' "
                                  "(compressed_depth_image_transport) and 16-bit PNG ('16UC1; png compressed')")
    orig, codec = _depth_format(fmt)
    if orig not in ("16UC1", "mono16", "32FC1"):
        raise UnsupportedEncoding(f"compressedDepth of {orig!r} is not supported; accepted: 16UC1, 32FC1")
    if codec not in ("png", "rvl"):
        raise UnsupportedEncoding(f"compressedDepth codec {codec!r} in {fmt!r} is not supported; accepted: png, rvl")
    if buf.size <= CONFIG_HEADER:
        raise CorruptFrame(f"compressedDepth ({fmt}): {buf.size} bytes, no payload after the 12-byte header")
    _, quant_a, quant_b = struct.unpack_from("<iff", buf[:CONFIG_HEADER].tobytes())
    payload = buf[CONFIG_HEADER:]
    raw = _png16(payload, fmt) if codec == "png" else rvl_decode(payload)
    if orig != "32FC1":
        return raw.astype(np.float32) * np.float32(0.001)
    if not (np.isfinite(quant_a) and np.isfinite(quant_b)) or quant_a == 0:
        raise CorruptFrame(f"compressedDepth ({fmt}): bad inverse-depth parameters A={quant_a}, B={quant_b}")
    v = raw.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(quant_a) / (v - np.float32(quant_b))
    depth[(raw == 0) | ~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth.astype(np.float32, copy=False)
