"""sensor_msgs -> arrays for every encoding a camera driver writes, and segmentations -> messages."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from asymformer.deploy.segmenter import Segmentation
from asymformer.outputs.points import Intrinsics, back_project
from asymformer.robot import messages as M
from asymformer.robot.codecs import CorruptFrame, UnsupportedEncoding, rvl_decode

from . import rosmsgs as R

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
MM = RNG.integers(300, 9000, (6, 7), dtype=np.uint16)
MM[0, :3] = 0  # invalid pixels


# ----------------------------------------------------------------------------------------------- raw colour
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_raw_colour_encodings_with_and_without_row_padding(enc, pad):
    alpha = np.full((6, 7, 1), 77, np.uint8)
    src = {"rgb8": RGB, "bgr8": RGB[..., ::-1], "rgba8": np.concatenate([RGB, alpha], 2),
           "bgra8": np.concatenate([RGB[..., ::-1], alpha], 2)}[enc]
    msg = R.image(src, enc, pad=pad)
    assert msg.step == 7 * src.shape[2] + pad
    out = M.decode_color(msg)
    assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
    np.testing.assert_array_equal(out, RGB)


def test_mono8_colour_is_grey_rgb():
    grey = RGB[..., 0]
    out = M.decode_color(R.image(grey, "mono8", pad=3))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, 2))


@pytest.mark.parametrize("enc", ["yuv422", "yuv422_yuy2"])
def test_packed_yuv422_colour(enc):
    """Grey (U = V = 128) decodes to Y exactly; a saturated patch to the BT.601 colour."""
    y = np.array([[16, 100, 200, 235], [50, 60, 70, 80]], np.uint8)
    u = np.array([[128, 128], [90, 90]], np.uint8)  # one U and one V per pixel pair
    v = np.array([[128, 128], [240, 240]], np.uint8)
    px = np.zeros((2, 4, 2), np.uint8)
    if enc == "yuv422":  # UYVY: U Y0 V Y1
        px[:, 0::2, 0], px[:, 1::2, 0], px[..., 1] = u, v, y
    else:  # YUY2 = YUYV: Y0 U Y1 V
        px[..., 0], px[:, 0::2, 1], px[:, 1::2, 1] = y, u, v
    out = M.decode_color(R.image(px, enc, pad=4))
    np.testing.assert_array_equal(out[0], np.repeat(y[0][:, None], 3, 1))
    yy, uu, vv = 50.0, 90 - 128.0, 240 - 128.0
    expect = np.clip(np.rint([yy + 1.403 * vv, yy - 0.714 * vv - 0.344 * uu, yy + 1.773 * uu]), 0, 255)
    np.testing.assert_array_equal(out[1, 0], expect)  # a red: G and B clip at 0


def test_unknown_colour_encoding_names_it_and_the_accepted_list():
    with pytest.raises(UnsupportedEncoding, match=r"'bayer_rggb8'.*accepted: rgb8, bgr8, rgba8, bgra8, mono8"):
        M.decode_color(R.image(RGB[..., 0].copy(), "bayer_rggb8"))
    with pytest.raises(UnsupportedEncoding, match="depth encoding: pass this topic as the depth topic"):
        M.decode_color(R.image(MM, "16UC1"))


def test_truncated_raw_image_is_a_corrupt_frame():
    msg = R.image(RGB, "rgb8")
    msg.data = msg.data[:-10]
    with pytest.raises(CorruptFrame, match="truncated"):
        M.decode_color(msg)


# ----------------------------------------------------------------------------------------------- raw depth
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 6])
@pytest.mark.parametrize("enc", ["16UC1", "mono16"])
def test_16bit_depth_millimetres_padded_and_big_endian(enc, pad, bigendian):
    msg = R.image(MM, enc, pad=pad, bigendian=bigendian)
    if bigendian:  # the bytes really are swapped
        assert bytes(msg.data[:2]) == struct.pack(">H", int(MM[0, 0]))
    out = M.decode_depth(msg)
    assert out.dtype == np.float32 and out.shape == (6, 7)
    np.testing.assert_allclose(out, MM.astype(np.float32) / 1000, rtol=1e-6)
    assert (out[0, :3] == 0).all()


@pytest.mark.parametrize("bigendian", [False, True])
def test_32fc1_metres_invalid_values_become_zero(bigendian):
    d = MM.astype(np.float32) / 1000
    d[1, 1], d[1, 2], d[1, 3], d[1, 4] = np.nan, np.inf, -np.inf, -0.5
    out = M.decode_depth(R.image(d, "32FC1", pad=4, bigendian=bigendian))
    assert np.isfinite(out).all()
    assert (out[1, 1:5] == 0).all()
    keep = np.isfinite(d) & (d > 0)
    np.testing.assert_array_equal(out[keep], d[keep])


def test_unknown_depth_encoding_lists_the_accepted_ones():
    with pytest.raises(UnsupportedEncoding, match=r"'8UC1'.*16UC1 / mono16 \(millimetres\), 32FC1 \(metres\)"):
        M.decode_depth(R.image(RGB[..., 0].copy(), "8UC1"))
    with pytest.raises(UnsupportedEncoding, match="colour encoding"):
        M.decode_depth(R.image(RGB, "rgb8"))


# ----------------------------------------------------------------------------------------------- compressed colour
FORMATS = ["", "jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8",
           "rgb8; png compressed bgr8", "bgra8; png compressed bgra8", "mono8; jpeg compressed mono8", "tiff"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_compressed_colour_every_image_transport_format(fmt):
    codec = "PNG" if "png" in fmt else "TIFF" if "tiff" in fmt else "JPEG"
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (200, 30, 10)  # flat areas: jpeg keeps them close
    rgb[:, 12:] = (10, 60, 220)
    src = rgb if "mono8" not in fmt else rgb[..., 1]
    msg = R.compressed(R.encode(src, codec, **({"quality": 95} if codec == "JPEG" else {})), fmt)
    assert M.is_compressed(msg)
    out = M.decode_color(msg)
    expect = rgb if "mono8" not in fmt else np.repeat(rgb[..., 1:2], 3, 2)
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    tol = 0 if codec != "JPEG" else 12
    assert np.abs(out[:, 2:10].astype(int) - expect[:, 2:10]).max() <= tol  # channel order kept: red stays red
    assert np.abs(out[:, 14:22].astype(int) - expect[:, 14:22]).max() <= tol


@pytest.mark.parametrize("cut", ["truncated", "garbage", "empty"])
def test_corrupt_compressed_colour_is_a_corrupt_frame(cut):
    data = R.encode(RGB, "JPEG")
    data = {"truncated": data[: len(data) // 2], "garbage": b"\x00\x01not an image" * 8, "empty": b""}[cut]
    with pytest.raises(CorruptFrame, match="cannot decode"):
        M.decode_color(R.compressed(data, "rgb8; jpeg compressed bgr8"))


def test_compressed_colour_unknown_codec_and_depth_format_are_refused():
    with pytest.raises(UnsupportedEncoding, match="'h264'.*accepted codecs: jpeg"):
        M.decode_color(R.compressed(b"xx", "h264"))
    with pytest.raises(UnsupportedEncoding, match="compressed depth, not colour"):
        M.decode_color(R.compressed_depth_16(MM))


# ----------------------------------------------------------------------------------------------- compressedDepth
@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_compressed_depth_16uc1_png_and_rvl(codec):
    out = M.decode_depth(R.compressed_depth_16(MM, codec))
    np.testing.assert_allclose(out, MM.astype(np.float32) / 1000, rtol=1e-6)
    assert (out[0, :3] == 0).all()


def test_old_compressed_depth_format_without_codec_is_png():
    msg = R.compressed_depth_16(MM)
    msg.format = "16UC1; compressedDepth"
    np.testing.assert_allclose(M.decode_depth(msg), MM / 1000, rtol=1e-6)


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_compressed_depth_32fc1_inverse_depth_hand_made_values(codec):
    # A = 100 * 101 = 10100, B = 1 - 10100 / 10 = -1009; d = 2 m -> v = 5050 - 1009 = 4041
    d = np.array([[2.0, 0.5, np.nan, 12.0], [1.0, 0.0, 9.5, 4.0]], np.float32)
    v, a, b = R.inverse_depth(d)
    assert (a, b) == (10100.0, -1009.0) and v[0, 0] == 4041 and v[0, 2] == 0 and v[0, 3] == 0
    out = M.decode_depth(R.compressed_depth_32(d, codec))
    assert out[0, 2] == 0 and out[0, 3] == 0 and out[1, 1] == 0  # NaN, beyond depth_max, zero: invalid
    assert out[0, 0] == pytest.approx(10100 / (4041 + 1009))  # exactly A / (v - B): 2.0
    ok = np.array([[1, 1, 0, 0], [1, 0, 1, 1]], bool)
    # quantisation error of inverse depth grows with d^2 / A
    assert np.abs(out[ok] - d[ok]).max() < 9.5 ** 2 / 10100 + 1e-4


def test_compressed_16bit_png_depth_is_millimetres():
    msg = R.compressed(R.png16(MM), "16UC1; png compressed 16UC1")
    np.testing.assert_allclose(M.decode_depth(msg), MM / 1000, rtol=1e-6)


def test_corrupt_compressed_depth_frames():
    good = R.compressed_depth_16(MM)
    short = R.compressed(bytes(good.data[:10]), good.format)
    with pytest.raises(CorruptFrame, match="no payload after the 12-byte header"):
        M.decode_depth(short)
    cut = R.compressed(bytes(good.data[: len(good.data) - 20]), good.format)
    with pytest.raises(CorruptFrame):
        M.decode_depth(cut)
    rvl = R.compressed_depth_16(MM, "rvl")
    with pytest.raises(CorruptFrame, match="rvl depth"):
        M.decode_depth(R.compressed(bytes(rvl.data[:24]), rvl.format))


def test_compressed_depth_unknown_codec_or_source_encoding_refused():
    with pytest.raises(UnsupportedEncoding, match="codec 'zstd'.*accepted: png, rvl"):
        M.decode_depth(R.compressed(b"\x00" * 40, "16UC1; compressedDepth zstd"))
    with pytest.raises(UnsupportedEncoding, match="'8UC1'"):
        M.decode_depth(R.compressed(b"\x00" * 40, "8UC1; compressedDepth png"))
    with pytest.raises(UnsupportedEncoding, match="compressed depth format 'jpeg'"):
        M.decode_depth(R.compressed(R.encode(RGB, "JPEG"), "jpeg"))


def test_rvl_round_trip_on_a_realistic_depth_image():
    rng = np.random.default_rng(3)
    mm = (1500 + np.cumsum(rng.integers(-40, 40, (48, 64)), axis=1)).astype(np.uint16)
    mm[rng.random((48, 64)) < 0.2] = 0
    mm[10:20] = 0  # a long run of holes
    mm[30, 5] = 65535  # extremes
    mm[30, 6] = 1
    np.testing.assert_array_equal(rvl_decode(R.rvl_encode(mm)), mm)
    np.testing.assert_array_equal(rvl_decode(R.rvl_encode(np.zeros((4, 5), np.uint16))), 0)


# ----------------------------------------------------------------------------------------------- camera info
@pytest.mark.parametrize("ts", [R.TS2, R.TS1], ids=["ros2_k", "ros1_K"])
def test_camera_intrinsics_from_k_or_K(ts):
    intr = M.camera_intrinsics(R.camera_info(525.0, 526.0, 319.5, 239.5, 640, 480, ts=ts))
    assert intr == Intrinsics(525.0, 526.0, 319.5, 239.5, 640, 480)


def test_uncalibrated_camera_info_says_why():
    msg = R.camera_info(525.0, 525.0, 1, 1, 640, 480)
    msg.k = np.zeros(9)
    with pytest.raises(ValueError, match=r"uncalibrated \(k\[0\] == 0"):
        M.camera_intrinsics(msg)


def test_stamp_ns_reads_ros2_and_ros1_headers():
    t = 1_700_000_123_456_789_012
    assert M.stamp_ns(R.image(RGB, "rgb8", stamp_ns=t)) == t
    assert M.stamp_ns(R.image(RGB, "rgb8", stamp_ns=t, ts=R.TS1).header) == t


# ----------------------------------------------------------------------------------------------- outputs
TYPES = M.MessageTypes.from_typestore(R.TS2)


def _seg(h=6, w=7, k=5, seed=1):
    rng = np.random.default_rng(seed)
    return Segmentation(rng.integers(0, k, (h, w)), rng.random((h, w)).astype(np.float32))


def test_output_messages_decode_back_and_carry_the_colour_header():
    from asymformer import viz

    seg, colors = _seg(), viz.palette(5)
    depth = MM.astype(np.float32) / 1000
    intr = Intrinsics(5.0, 6.0, 3.0, 2.5)
    hdr = R.header(1_234_567_890_123, "cam_optical")
    out = M.output_messages(seg, hdr, TYPES, rgb=RGB, depth_m=depth, intrinsics=intr, class_colors=colors, alpha=0.4)
    assert list(out) == ["labels", "confidence", "overlay", "points"]
    for msg in out.values():
        assert M.stamp_ns(msg) == 1_234_567_890_123 and msg.header.frame_id == "cam_optical"
        R.TS2.serialize_cdr(msg, msg.__msgtype__)  # a valid message for the bag writer
    assert out["labels"].encoding == "mono8"
    np.testing.assert_array_equal(M._rows(out["labels"], 1, "u1")[..., 0], seg.labels)
    assert out["confidence"].encoding == "32FC1"
    np.testing.assert_array_equal(M.decode_depth(out["confidence"]), seg.confidence)
    expect = viz.overlay(RGB, viz.colorize(seg.labels, colors), 0.4)
    np.testing.assert_array_equal(M.decode_color(out["overlay"]), expect)
    cloud = M.read_points(out["points"])
    pc = out["points"]
    assert [f.name for f in pc.fields] == ["x", "y", "z", "rgb", "label", "confidence"]
    assert [f.offset for f in pc.fields] == [0, 4, 8, 12, 16, 20] and pc.point_step == 24
    assert [f.datatype for f in pc.fields] == [7, 7, 7, 7, 6, 7] and pc.is_dense and pc.height == 1
    assert pc.row_step == 24 * pc.width
    ref = back_project(depth, intr, seg.labels, seg.confidence, colors)
    assert len(cloud) == len(ref) == (depth > 0).sum()
    np.testing.assert_array_equal(cloud["z"], ref.z)
    packed = cloud["rgb"].view(np.uint32)
    np.testing.assert_array_equal(np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1), ref.rgb)
    assert (packed >> 24 == 0).all()
    np.testing.assert_array_equal(cloud["label"], seg.labels[depth > 0])
    np.testing.assert_array_equal(cloud["confidence"], seg.confidence[depth > 0])


def test_labels_past_256_classes_are_mono16():
    seg = Segmentation(np.full((4, 4), 300), np.ones((4, 4), np.float32))
    from asymformer import viz

    out = M.output_messages(seg, R.header(5), TYPES, outputs=("labels",), class_colors=viz.palette(301))
    assert out["labels"].encoding == "mono16" and out["labels"].step == 8
    assert (M._rows(out["labels"], 1, "u2") == 300).all()


def test_outputs_that_need_inputs_say_which():
    with pytest.raises(ValueError, match="'points' needs depth_m and intrinsics"):
        M.output_messages(_seg(), R.header(0), TYPES, outputs=("points",))
    with pytest.raises(ValueError, match="'overlay' needs the colour frame"):
        M.output_messages(_seg(), R.header(0), TYPES, outputs=("overlay",))
    with pytest.raises(ValueError, match="unknown outputs"):
        M.output_messages(_seg(), R.header(0), TYPES, outputs=("mask",))


def test_all_invalid_depth_gives_an_empty_cloud_and_labels_still():
    d = np.full((6, 7), np.nan, np.float32)
    out = M.output_messages(_seg(), R.header(0), TYPES, depth_m=d, intrinsics=Intrinsics(5, 5, 3, 3),
                            outputs=("labels", "points"))
    assert out["points"].width == 0 and len(out["points"].data) == 0 and out["labels"].height == 6


def test_class_info_message_is_json_with_names_and_colours():
    msg = M.class_info_message(["wall", "floor"], [[1, 2, 3], [4, 5, 6]], TYPES)
    doc = json.loads(msg.data)
    assert doc["classes"] == [{"id": 0, "name": "wall", "color": [1, 2, 3]},
                              {"id": 1, "name": "floor", "color": [4, 5, 6]}]
    assert doc["label_encoding"] == "mono8"


def test_rclpy_style_messages_with_array_data_decode_the_same():
    """rclpy keeps uint8[] as array.array('B'); the same code path must read it."""
    import array

    msg = R.image(MM, "16UC1", pad=2)
    msg.data = array.array("B", bytes(msg.data))
    np.testing.assert_allclose(M.decode_depth(msg), MM / 1000, rtol=1e-6)
    c = R.compressed(R.encode(RGB, "PNG"), "png")
    c.data = bytes(c.data)
    np.testing.assert_array_equal(M.decode_color(c), RGB)
