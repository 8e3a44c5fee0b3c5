"""LiveSegmentation (the node's logic without ROS) with rosbags' messages: pairing, decoding,
segmenting, publishing each output with the colour header; the class info; settings and topic
types refused by name; colour without depth; points without camera info; a bad frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asymformer import Segmenter
from asymformer.deploy.segmenter import Segmentation
from asymformer.robot import messages as M
from asymformer.robot.live import LiveSegmentation, NodeSettings, subscription_kind

from . import rosmsgs as R
from .live_helpers import CX, CY, FX, FY, NAMES, H, W, frame, messages, save_checkpoint, stamp, wait_for


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("live") / "tiny.safetensors")


@pytest.fixture(scope="module")
def seg(checkpoint):
    return Segmenter(checkpoint, device="cpu")


def ready(live, info=None):
    """Start `live` and wait until its model is warm (the camera info gives the frame size)."""
    live.start()
    live.on_info(info if info is not None else messages(0)[2])
    assert wait_for(lambda: not live.warming)
    return live


def make_live(seg, checkpoint, **params):
    sent, logs = [], []
    settings = NodeSettings.from_params({"checkpoint": str(checkpoint), **params})
    live = LiveSegmentation(seg, settings, M.MessageTypes.from_typestore(R.TS2),
                            lambda key, msg: sent.append((key, msg)),
                            topics={"rgb": "/cam/color", "depth": "/cam/depth", "camera_info": "/cam/info"},
                            log=lambda level, text: logs.append((level, text)))
    return live, sent, logs


@pytest.mark.parametrize("compressed", [False, True])
def test_pairs_are_segmented_and_every_output_published(seg, checkpoint, compressed):
    live, sent, logs = make_live(seg, checkpoint, queue_depth=4)
    ready(live)
    for i in range(2):
        color, depth, info = messages(i, compressed)
        live.on_info(info)
        live.on_color(color)
        live.on_depth(depth)
    live.on_color(messages(2, compressed)[0])  # moves colour past frame 1's slop: frame 1 is decided
    live.on_depth(messages(2, compressed)[1])
    assert wait_for(lambda: sum(k == "points" for k, _ in sent) >= 2)
    stats = live.close()
    by_key = {}
    for key, msg in sent:
        by_key.setdefault(key, []).append(msg)
    info = json.loads(by_key["class_info"][0].data)
    assert [c["name"] for c in info["classes"]] == NAMES and info["label_encoding"] == "mono8"
    for i in range(2):
        rgb, mm = frame(i)
        want = seg(rgb, mm.astype(np.float32) / 1000, depth_unit=1.0)
        lab = by_key["labels"][i]
        assert (M.stamp_ns(lab), lab.header.frame_id, lab.encoding) == (stamp(i), R.FRAME, "mono8")
        np.testing.assert_array_equal(np.frombuffer(bytes(lab.data), np.uint8).reshape(H, W), want.labels)
        conf = np.frombuffer(bytes(by_key["confidence"][i].data), "<f4").reshape(H, W)
        np.testing.assert_allclose(conf, want.confidence, rtol=1e-5)
        assert M.decode_color(by_key["overlay"][i]).shape == (H, W, 3)
        pts = M.read_points(by_key["points"][i])
        assert len(pts) == int((mm > 0).sum()) and M.stamp_ns(by_key["points"][i]) == stamp(i)
        v, u = divmod(int(np.flatnonzero(mm.ravel() > 0)[0]), W)
        z = mm[v, u] / 1000
        assert pts["x"][0] == pytest.approx((u - CX) * z / FX, rel=1e-5)
        assert pts["y"][0] == pytest.approx((v - CY) * z / FY, rel=1e-5)
    assert stats["pairing"]["pairs"] >= 2 and stats["errors"] == 0 and not [x for x in logs if x[0] == "error"]
    # warmed up at the camera info's size before the first pair (off this thread), and said so
    assert stats["warm_up_s"] > 0 and stats["processed"] == 2 and stats["dropped"] == 0
    assert stats["received"] == 3 and stats["dropped_by_reason"]["warming up"] == 0
    assert any(level == "info" and text.startswith(f"model ready for {H}×{W} frames") for level, text in logs)


def test_colour_without_depth_warns_with_the_reason_and_stays_bounded(seg, checkpoint):
    live, sent, logs = make_live(seg, checkpoint, stall_after_s=1.0)
    for i in range(200):
        live.on_color(messages(i)[0])
    assert wait_for(lambda: any(level == "warn" for level, _ in logs), timeout=5)
    live.close()
    text = next(t for level, t in logs if level == "warn")
    assert "200 colour frames but no depth on /cam/depth" in text and "-r depth:=" in text
    s = live.pairer.stats()
    assert s["pending_color"] <= 65 and s["unpaired_color"] >= 135 and not sent


def test_points_need_camera_info_the_rest_is_published(seg, checkpoint):
    live, sent, logs = make_live(seg, checkpoint, outputs="labels,points", size=f"{H}x{W}", class_info=False)
    live.start()  # no camera info: warmed up at the `size` parameter
    assert wait_for(lambda: not live.warming)
    color, depth, _ = messages(0)
    live.on_color(color)
    live.on_depth(depth)
    live.on_color(messages(1)[0])
    live.on_depth(messages(1)[1])
    assert wait_for(lambda: len(sent) >= 1)
    live.close()
    assert {k for k, _ in sent} == {"labels"}
    assert [t for level, t in logs if level == "warn"][0].startswith("no camera info on /cam/info yet")


def test_the_confidence_map_is_computed_only_for_outputs_that_read_it(seg, checkpoint):
    """labels / overlay alone: no confidence map (half the post-processing at 480×640); points and
    confidence need it, also when `outputs` changes at run time; a frame post-processed before such
    a change publishes what it can instead of failing."""
    live, sent, logs = make_live(seg, checkpoint, outputs="labels,overlay", size=f"{H}x{W}")
    assert live.runner.confidence is False
    live.update(NodeSettings.from_params({"checkpoint": str(checkpoint), "outputs": "labels,points"}))
    assert live.runner.confidence is True
    live.update(NodeSettings.from_params({"checkpoint": str(checkpoint), "outputs": "labels,confidence"}))
    live.runner.confidence = False  # as if the frame were post-processed just before that change
    ready(live)
    for i in range(2):
        color, depth, _ = messages(i)
        live.on_color(color)
        live.on_depth(depth)
    assert wait_for(lambda: any(k == "labels" for k, _ in sent))
    live.close()
    assert "confidence" not in {k for k, _ in sent} and not [t for level, t in logs if level == "error"]
    with pytest.raises(ValueError, match=r"outputs \['points'\] need the confidence map"):
        M.output_messages(Segmentation(np.zeros((H, W), np.int64), None), color.header,
                          M.MessageTypes.from_typestore(R.TS2), outputs=("points",))


def test_a_frame_of_the_wrong_encoding_is_reported_once_and_skipped(seg, checkpoint):
    live, sent, logs = make_live(seg, checkpoint, class_info=False)
    live.start()
    for i in range(3):
        rgb, mm = frame(i)
        live.on_color(R.image(mm, "16UC1", stamp(i)))  # depth published on the colour topic
        live.on_depth(R.image(mm, "16UC1", stamp(i)))
    def decided():  # decoded off this thread; keep-latest may have dropped one as stale before it
        d = live.stats()["dropped_by_reason"]
        return d["bad frame"] >= 1 and d["bad frame"] + d["stale"] == 2

    assert wait_for(decided)
    live.close()
    errors = [t for level, t in logs if level == "error"]
    assert len(errors) == 1 and "pass this topic as the depth topic" in errors[0] and not sent


def test_settings_are_checked_by_name():
    with pytest.raises(ValueError, match="'checkpoint' is required"):
        NodeSettings.from_params({})
    with pytest.raises(ValueError, match="'outputs': unknown mask"):
        NodeSettings.from_params({"checkpoint": "m", "outputs": ["labels", "mask"]})
    with pytest.raises(ValueError, match="'size' must be HxW"):
        NodeSettings.from_params({"checkpoint": "m", "size": "480"})
    with pytest.raises(ValueError, match="unknown parameter"):
        NodeSettings.from_params({"checkpoint": "m", "slopp": 0.1})
    s = NodeSettings.from_params({"checkpoint": "m", "size": "480x640", "outputs": "labels, points", "max_depth": 0.0})
    assert s.size == (480, 640) and s.outputs == ("labels", "points") and s.max_depth is None


def test_subscription_kind_follows_the_topic_type():
    assert subscription_kind("rgb", "/c", ["sensor_msgs/msg/Image"]) == "Image"
    assert subscription_kind("depth", "/d", ["sensor_msgs/msg/CompressedImage"]) == "CompressedImage"
    assert subscription_kind("camera_info", "/i", ["sensor_msgs/msg/CameraInfo"]) == "CameraInfo"
    with pytest.raises(ValueError, match=r"topic /p \('depth'\) has type sensor_msgs/msg/PointCloud2, expected "
                                         r"sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage; remap 'depth'"):
        subscription_kind("depth", "/p", ["sensor_msgs/msg/PointCloud2"])


def test_a_new_frame_size_mid_stream_keeps_labels_and_stops_points(seg, checkpoint):
    """The camera switches resolution: labels follow the new size; the old camera info no longer
    fits, so points stop (one warning) instead of being back-projected wrongly."""
    live, sent, logs = make_live(seg, checkpoint, queue_depth=4)
    ready(live)  # calibrated for H×W
    rng = np.random.default_rng(5)

    def feed(i):
        h, w = (H, W) if i == 0 else (32, 48)
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mm = rng.integers(500, 4000, (h, w), dtype=np.uint16)
        live.on_color(R.image(rgb, "rgb8", stamp(i)))
        live.on_depth(R.image(mm, "16UC1", stamp(i)))

    for i in range(3):
        feed(i)  # decides pairs 0 (H×W) and 1 (32×48: warms the model up for that size, off this thread)
    assert wait_for(lambda: any(t.startswith("model ready for 32×48 frames") for _, t in logs))
    for i in range(3, 5):
        feed(i)
    assert wait_for(lambda: sum(k == "labels" for k, _ in sent) >= 3)
    stats = live.close()
    labels = [m for k, m in sent if k == "labels"]
    points = [m for k, m in sent if k == "points"]
    assert (labels[0].height, labels[0].width) == (H, W) and (labels[1].height, labels[1].width) == (32, 48)
    assert len(points) == 1 and points[0].header.stamp.nanosec == labels[0].header.stamp.nanosec
    warns = [t for level, t in logs if level == "warn"]
    assert any("camera info is for another image size" in t for t in warns)
    assert any("frame size changed from 40×56 to 32×48" in t for t in warns)
    # the new size was warmed up on the intake thread: its first pair is dropped as "warming up", counted
    assert stats["dropped_by_reason"]["warming up"] == 1 and stats["received"] == 5 and stats["processed"] == 3


def test_the_warm_up_runs_the_runtimes_own_threads_and_publishes_nothing(seg, checkpoint):
    """The warm-up ends with one frame through the runtime's stage threads (their first frame
    builds arenas, OpenMP teams and buffers: ~110 MB at 480×640 that otherwise came with the first
    camera frames and looked like a leak), neither published nor counted nor in the latency."""
    live, sent, logs = make_live(seg, checkpoint, size=f"{H}x{W}")
    live.start()
    assert wait_for(lambda: not live.warming)
    stats = live.close()
    assert stats["warm_up_frames"] == 1  # the stage threads ran one frame (StreamRunner.warm_up)
    assert stats["processed"] == stats["runner_processed"] == stats["received"] == stats["dropped_total"] == 0
    assert stats["latency_p50_ms"] is None
    assert {k for k, _ in sent} <= {"class_info", "label_info"}
    assert any(t.startswith(f"model ready for {H}×{W} frames") for _, t in logs)
