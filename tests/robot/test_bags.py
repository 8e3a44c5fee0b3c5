"""Bags in, labelled bags out: three independent writers, realsense- and TUM-style topics, every bad input."""

from __future__ import annotations

import numpy as np
import pytest

from asymformer.robot.bags import bag_paths, normalize_type, open_bag, output_names, shard
from asymformer.robot.messages import camera_intrinsics, decode_color, decode_depth, read_points, stamp_ns
from asymformer.robot.pipeline import process_bag, run_pipeline

from . import bagfiles as B
from . import rosmsgs as R

RS = (B.RS_COLOR, B.RS_DEPTH, B.RS_INFO)
TUM = (B.TUM_COLOR, B.TUM_DEPTH, B.TUM_INFO)


def read_bag(path) -> dict[str, list]:
    """topic -> [(log time, message)] of any bag, read back with rosbags."""
    out: dict[str, list] = {}
    with open_bag(path) as r:
        for conn, t, raw in r.messages():
            typ = conn.msgtype if conn.msgtype in r.typestore.fielddefs else normalize_type(conn.msgtype)
            out.setdefault(conn.topic, []).append((t, r.deserialize(raw, typ)))
    return out


def _hand_points(depth, k):
    fx, fy, cx, cy = k
    v, u = np.nonzero(depth > 0)
    z = depth[v, u]
    return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], 1)


def _check_output(out, src, segmenter, topics, storage="mcap"):
    """Labels equal the Segmenter's on the same decoded frames; points equal a hand back-projection;
    stamps and frame ids are the colour frame's; input topics copied."""
    rgb_t, depth_t, info_t = topics
    suffix = "mcap" if storage == "mcap" else "db3"
    assert (out / "metadata.yaml").is_file() and (out / f"{out.name}.{suffix}").is_file()
    got, inp = read_bag(out), read_bag(src)
    for t in topics:
        assert len(got[t]) == len(inp[t])  # copied
    assert len(got["/asymformer/class_info"]) == 1
    # written once, at the first frame's time (a player shows the class names from the start)
    assert got["/asymformer/class_info"][0][0] == min(t for t, _ in got["/asymformer/labels"])
    colour = {stamp_ns(m): m for _, m in inp[rgb_t]}
    depth = sorted(inp[depth_t], key=lambda e: stamp_ns(e[1]))
    assert len(got["/asymformer/labels"]) == len(colour)
    for (t, lab), (_, conf), (_, cloud) in zip(got["/asymformer/labels"], got["/asymformer/confidence"],
                                               got["/asymformer/points"], strict=True):
        c = colour[stamp_ns(lab)]
        assert t == stamp_ns(lab) == stamp_ns(cloud) and lab.header.frame_id == c.header.frame_id
        d = decode_depth(min(depth, key=lambda e: abs(stamp_ns(e[1]) - t))[1])
        rgb = decode_color(c)
        ref = segmenter(rgb, d, depth_unit=1.0)
        assert lab.encoding == "mono8"
        np.testing.assert_array_equal(np.asarray(lab.data).reshape(lab.height, lab.width), ref.labels)
        np.testing.assert_allclose(np.asarray(conf.data).view("<f4").reshape(conf.height, conf.width), ref.confidence,
                                   rtol=1e-6)
        pts = read_points(cloud)
        hand = _hand_points(d, B.K)
        np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], 1), hand, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pts["label"], ref.labels[d > 0])
        assert np.isfinite(np.stack([pts["x"], pts["y"], pts["z"]])).all()


@pytest.mark.parametrize("color,depth", [("rgb8", "16UC1"), ("jpeg", "compressedDepth"), ("bgr8", "mono16")])
def test_rosbag2_mcap_realsense_recording(tmp_path, segmenter, color, depth):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(color=color, depth=depth))
    r = process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    assert r["frames"] == 4 and r["skipped"] == 0 and r["points"] == "written for 4 of 4 frames"
    assert r["model_ms"] > 0 and r["end_to_end_fps"] > 0
    _check_output(tmp_path / "out", src, segmenter, RS)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_labels_only_bags_skip_the_confidence_map(tmp_path, segmenter, monkeypatch):
    """--outputs labels: the Segmenter is asked for labels only (half the post-processing), and the
    labels are the same; with points (which carry the confidence) it computes the map."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense())
    asked = []
    postprocess = type(segmenter).postprocess

    def spy(self, logits, frame, single=True, is_tensor=False, return_logits=False, attention=None, confidence=True):
        asked.append(confidence)
        return postprocess(self, logits, frame, single, is_tensor, return_logits, attention, confidence)

    monkeypatch.setattr(type(segmenter), "postprocess", spy)
    process_bag(segmenter, src, tmp_path / "labels", *RS, outputs=("labels",), progress=False)
    assert asked and not any(asked)
    got, inp = read_bag(tmp_path / "labels"), read_bag(src)
    assert "/asymformer/confidence" not in got and len(got["/asymformer/labels"]) == 4
    colour, depth = {stamp_ns(m): m for _, m in inp[B.RS_COLOR]}, inp[B.RS_DEPTH]
    for t, lab in got["/asymformer/labels"]:
        d = decode_depth(min(depth, key=lambda e: abs(stamp_ns(e[1]) - t))[1])
        ref = segmenter(decode_color(colour[stamp_ns(lab)]), d, depth_unit=1.0)
        np.testing.assert_array_equal(np.asarray(lab.data).reshape(lab.height, lab.width), ref.labels)
    asked.clear()
    process_bag(segmenter, src, tmp_path / "points", *RS, outputs=("labels", "points"), progress=False)
    assert asked and all(asked)


def test_sqlite3_in_and_out(tmp_path, segmenter):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(), storage="sqlite3")
    process_bag(segmenter, src, tmp_path / "out", *RS, storage="sqlite3", progress=False)
    _check_output(tmp_path / "out", src, segmenter, RS, storage="sqlite3")


def test_bare_mcap_and_db3_files(tmp_path, segmenter):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=2), storage="sqlite3")
    r = process_bag(segmenter, src / "rec.db3", tmp_path / "out", *RS, progress=False)
    assert r["frames"] == 2


@pytest.mark.parametrize("short_names", [False, True])
def test_foxglove_mcap_writer_recording(tmp_path, segmenter, short_names):
    """An independent writer (mcap-ros2-support: its own CDR encoder, zstd chunks); some tools name
    schemas 'sensor_msgs/Image' instead of 'sensor_msgs/msg/Image'."""
    src = B.write_foxglove_mcap(tmp_path / "fox.mcap", B.realsense(), short_names=short_names)
    r = process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    assert r["frames"] == 4 and r["skipped"] == 0
    _check_output(tmp_path / "out", src, segmenter, RS)


def test_output_reads_back_with_foxglove_reader(tmp_path, segmenter):
    """What Nav2's semantic layer and Foxglove read: mono8 confidence and vision_msgs/LabelInfo, decoded
    by mcap-ros2-support (its own CDR decoder, from the schema text our writer stored)."""
    from mcap_ros2.reader import read_ros2_messages

    src = B.write_foxglove_mcap(tmp_path / "fox.mcap", B.realsense(n=2))
    process_bag(segmenter, src, tmp_path / "out", *RS, progress=False, confidence_encoding="mono8")
    got: dict = {}
    for m in read_ros2_messages(str(next((tmp_path / "out").glob("*.mcap")))):
        got.setdefault(m.channel.topic, []).append(m.ros_msg)
    (info,) = got["/asymformer/label_info"]
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(segmenter.class_names))
    conf = got["/asymformer/confidence"][0]
    assert conf.encoding == "mono8" and len(conf.data) == conf.width * conf.height == 96 * 64
    assert len(got["/asymformer/labels"]) == 2


@pytest.mark.parametrize("compression", [None, "bz2", "lz4"])
def test_ros1_tum_recording_32fc1_with_nan_holes(tmp_path, segmenter, compression):
    src = B.write_ros1(tmp_path / "tum.bag", B.tum(), compression)
    r = process_bag(segmenter, src, tmp_path / "out", *TUM, progress=False)
    assert r["frames"] == 4 and r["max_stamp_offset_ms"] == 11.0
    _check_output(tmp_path / "out", src, segmenter, TUM)
    info = read_bag(tmp_path / "out")[B.TUM_INFO][0][1]  # ROS 1 CameraInfo (K) copied as ROS 2 (k)
    assert info.__msgtype__ == "sensor_msgs/msg/CameraInfo" and camera_intrinsics(info).fx == B.K[0]


def test_missing_depth_and_out_of_order_stamps(tmp_path, segmenter):
    msgs = B.realsense(n=6, drop_depth=(2,))
    colour = [m for m in msgs if m[0] == B.RS_COLOR]
    rest = [m for m in msgs if m[0] != B.RS_COLOR]
    (a, ta, ma), (b, tb, mb) = (colour[1][:1] + colour[1][2:]), (colour[3][:1] + colour[3][2:])
    colour[1], colour[3] = (a, B.IMAGE, tb, ma), (b, B.IMAGE, ta, mb)  # recorded out of stamp order
    src = B.write_rosbag2(tmp_path / "rec", rest + colour)
    r = process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    assert r["frames"] == 5 and r["unpaired_color"] == 1 and r["unpaired_depth"] == 0
    assert r["out_of_order_stamps"] >= 1
    stamps = [stamp_ns(m) for _, m in read_bag(tmp_path / "out")["/asymformer/labels"]]
    assert sorted(stamps) == [B.T0 + i * 33 * B.MS for i in range(6) if i != 2]


def test_corrupt_frame_is_skipped_counted_and_named(tmp_path, segmenter):
    msgs = B.realsense(n=4, color="jpeg")
    topic, typ, t, bad = msgs[3]  # frame 1's colour
    assert topic == B.RS_COLOR
    bad.data = bad.data[: len(bad.data) // 3]
    src = B.write_rosbag2(tmp_path / "rec", msgs)
    r = process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    assert r["frames"] == 3 and r["skipped"] == 1 and r["skipped_by_reason"] == {"corrupt colour frame": 1}
    named = r["skipped_frames"][0]
    assert named["topic"] == B.RS_COLOR and named["stamp_ns"] == stamp_ns(bad) and "cannot decode" in named["reason"]


def test_all_invalid_depth_writes_labels_and_empty_clouds(tmp_path, segmenter):
    msgs = B.realsense(n=2)
    for topic, _, _, m in msgs:
        if topic == B.RS_DEPTH:
            m.data[:] = 0
    src = B.write_rosbag2(tmp_path / "rec", msgs)
    process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    got = read_bag(tmp_path / "out")
    assert len(got["/asymformer/labels"]) == 2
    assert [m.width for _, m in got["/asymformer/points"]] == [0, 0]


def test_uncalibrated_or_missing_camera_info_means_no_points_and_says_why(tmp_path, segmenter):
    msgs = B.realsense(n=2)
    for topic, _, _, m in msgs:
        if topic == B.RS_INFO:
            m.k[:] = 0
    src = B.write_rosbag2(tmp_path / "rec", msgs)
    r = process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    assert "none for" in r["points"] and "uncalibrated" in r["points"]
    got = read_bag(tmp_path / "out")
    assert "/asymformer/points" not in got and len(got["/asymformer/labels"]) == 2
    r = process_bag(segmenter, src, tmp_path / "out2", B.RS_COLOR, B.RS_DEPTH, None, progress=False)
    assert r["points"].startswith("off: no intrinsics")
    from asymformer.outputs.points import Intrinsics

    r = process_bag(segmenter, src, tmp_path / "out3", B.RS_COLOR, B.RS_DEPTH, None,
                    intrinsics=Intrinsics(*B.K), progress=False)
    assert r["points"] == "written for 2 of 2 frames"


def test_missing_or_wrong_topic_lists_the_bag_with_likely_topics(tmp_path, segmenter):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    with pytest.raises(ValueError) as err:
        process_bag(segmenter, src, tmp_path / "out", "/camera/color/image_raw", B.RS_DEPTH, progress=False)
    msg = str(err.value)
    assert "no topic '/camera/color/image_raw' (--rgb-topic)" in msg and "\n" not in msg
    assert f"{B.RS_COLOR} (sensor_msgs/msg/Image, 1 messages)" in msg
    assert f"likely: --rgb-topic {B.RS_COLOR}, --depth-topic {B.RS_DEPTH}, --camera-info-topic {B.RS_INFO}" in msg
    with pytest.raises(ValueError, match="--rgb-topic /camera/camera/color/camera_info carries "
                                         "sensor_msgs/msg/CameraInfo, expected sensor_msgs/msg/Image"):
        process_bag(segmenter, src, tmp_path / "out", B.RS_INFO, B.RS_DEPTH, progress=False)
    assert not (tmp_path / "out").exists()


def test_unknown_encoding_stops_with_the_accepted_list_and_no_bag(tmp_path, segmenter):
    msgs = B.realsense(n=2)
    for topic, _, _, m in msgs:
        if topic == B.RS_COLOR:
            m.encoding = "bayer_grbg8"
    src = B.write_rosbag2(tmp_path / "rec", msgs)
    with pytest.raises(ValueError, match=r"--rgb-topic /camera/camera/color/image_raw: colour image encoding "
                                         r"'bayer_grbg8' is not supported; accepted: rgb8"):
        process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["rec"]


def test_colour_depth_size_mismatch_is_refused_with_the_fix(tmp_path, segmenter):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=2, size_mismatch=True))
    with pytest.raises(ValueError, match=r"is 96x64 but depth .* is 48x32.*align_depth.enable:=true"):
        process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)


def test_empty_bag(tmp_path, segmenter):
    from rosbags.rosbag2 import Writer

    with Writer(tmp_path / "empty", version=9) as w:
        w.add_connection(B.RS_COLOR, B.IMAGE, typestore=R.TS2)
    with pytest.raises(ValueError, match="the bag is empty"):
        process_bag(segmenter, tmp_path / "empty", tmp_path / "out", *RS, progress=False)


def test_existing_out_needs_overwrite_and_is_replaced_only_at_the_end(tmp_path, segmenter):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        process_bag(segmenter, src, tmp_path / "out", *RS, progress=False)
    process_bag(segmenter, src, tmp_path / "out", *RS, overwrite=True, progress=False)
    assert not (tmp_path / "out" / "old.txt").exists() and (tmp_path / "out" / "metadata.yaml").exists()


def test_interrupt_mid_run_leaves_no_half_bag(tmp_path, segmenter):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=6))
    calls = []

    class Interrupted:
        class_names, colors, backend, device = segmenter.class_names, segmenter.colors, "x", "cpu"

        def __call__(self, *a, **kw):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return segmenter(*a, **kw)

    with pytest.raises(KeyboardInterrupt):
        process_bag(Interrupted(), src, tmp_path / "out", *RS, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


@pytest.mark.parametrize("pools", [False, True])
def test_pipeline_streams_in_bounded_memory_and_keeps_order(pools):
    """Items in flight (read but not yet written) never exceed the queues, however long the input;
    decode / encode pools keep the order."""
    import threading

    lock = threading.Lock()
    state = {"made": 0, "written": [], "peak": 0, "dropped": 0}

    def items():
        for i in range(300):
            with lock:
                state["made"] += 1
                state["peak"] = max(state["peak"], state["made"] - len(state["written"]) - state["dropped"])
            yield i

    def decode(i):
        if i % 7 == 3:  # a skipped frame
            with lock:
                state["dropped"] += 1
            return None
        return i

    def write(*payload):
        with lock:
            state["written"].append(payload[0] if pools else payload)

    kw = dict(decode=decode, encode=lambda f, s: (f, s)) if pools else {}
    run_pipeline(items(), lambda f: f * 2, write, queue_size=2, workers=3, **kw)
    expect = [(i, 2 * i) for i in range(300) if not (pools and i % 7 == 3)]
    assert state["written"] == expect
    assert state["peak"] <= 2 + 4 + 4  # in_q + out_q + one item per stage


def test_pipeline_error_in_a_stage_is_raised_and_finish_says_not_ok():
    done = []

    def bad_decode(i):
        if i == 5:
            raise ValueError("frame 5 is broken")
        return i

    with pytest.raises(ValueError, match="frame 5 is broken"):
        run_pipeline(iter(range(100)), lambda f: f, lambda *a: None, decode=bad_decode, encode=lambda f, s: s,
                     finish=done.append)
    assert done == [False]


def test_several_recordings_folder_shard_and_distinct_names(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        B.write_rosbag2(tmp_path / sub / "rec", B.realsense(n=1))
    B.write_ros1(tmp_path / "a" / "x.bag", B.tum(n=1))
    paths = bag_paths([tmp_path / "a", tmp_path / "b" / "rec"])
    assert [p.name for p in paths] == ["rec", "x.bag", "rec"]
    assert output_names(paths) == ["a_rec", "x", "b_rec"]
    assert shard(paths, 1, 2) == [paths[1]] and shard(paths, 0, 2) == [paths[0], paths[2]]
    with pytest.raises(ValueError, match="0 <= K < N"):
        shard(paths, 2, 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no recordings in this folder"):
        bag_paths([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        bag_paths([tmp_path / "nope.bag"])


def test_camera_info_topic_without_messages_and_info_of_another_resolution(tmp_path, segmenter):
    from rosbags.rosbag2 import Writer

    msgs = [m for m in B.realsense(n=2) if m[0] != B.RS_INFO]
    with Writer(tmp_path / "rec", version=9) as w:
        conns = {t: w.add_connection(t, typ, typestore=R.TS2) for t, typ in dict((m[0], m[1]) for m in msgs).items()}
        w.add_connection(B.RS_INFO, B.INFO, typestore=R.TS2)  # the topic exists, never published
        for t, typ, ts, m in msgs:
            w.write(conns[t], ts, R.TS2.serialize_cdr(m, typ))
    r = process_bag(segmenter, tmp_path / "rec", tmp_path / "out", *RS, progress=False)
    assert r["frames"] == 2 and f"no message on {B.RS_INFO} yet (2 frames)" in r["points"]
    big = B.realsense(n=1)
    for t, _, _, m in big:
        if t == B.RS_INFO:
            m.width, m.height = 640, 480  # e.g. the unaligned depth camera's info
    src = B.write_rosbag2(tmp_path / "big", big)  # camera info of another size: no points, the frames stay
    r = process_bag(segmenter, src, tmp_path / "out2", *RS, progress=False)
    assert r["frames"] == 1 and r["failed"] is None
    assert f"{B.RS_INFO} is for 640x480 images, the frame is 96x64 (1 frames)" in r["points"]
    assert r["frames_without_points"] == [{"topic": B.RS_COLOR, "stamp_ns": B.T0, "reason": r["frames_without_points"]
                                           [0]["reason"]}]
    assert "/asymformer/points" not in read_bag(tmp_path / "out2")


@pytest.mark.skipif(not hasattr(__import__("os"), "getpriority"), reason="per-thread priorities are a Linux feature")
def test_pipeline_helper_threads_yield_the_cpu_to_the_model():
    import os
    import threading

    seen = set()

    def note(*a):
        seen.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return a[0]

    base = os.getpriority(os.PRIO_PROCESS, 0)
    run_pipeline(iter(range(6)), lambda f: f, note, decode=note, encode=note, nice=3)
    assert seen == {min(19, base + 3)}  # decode pool, encode pool and writer; the caller keeps its own
    assert os.getpriority(os.PRIO_PROCESS, 0) == base


def test_likely_topics_for_common_drivers():
    from asymformer.robot.bags import TopicSummary, likely_topics

    img, comp, info = B.IMAGE, B.COMPRESSED, B.INFO
    rs = [TopicSummary(t, typ, 10) for t, typ in [
        ("/camera/camera/depth/image_rect_raw", img), ("/camera/camera/color/image_raw/compressed", comp),
        ("/camera/camera/aligned_depth_to_color/image_raw", img), ("/camera/camera/color/image_raw", img),
        ("/camera/camera/infra1/image_rect_raw", img), ("/camera/camera/depth/camera_info", info),
        ("/camera/camera/color/camera_info", info), ("/tf", "tf2_msgs/msg/TFMessage")]]
    got = likely_topics(rs)
    assert got["color"][:2] == ["/camera/camera/color/image_raw", "/camera/camera/color/image_raw/compressed"]
    assert got["depth"][0] == "/camera/camera/aligned_depth_to_color/image_raw"
    assert got["info"][0] == "/camera/camera/color/camera_info"
    tum = [TopicSummary(t, typ, 10) for t, typ in [(B.TUM_DEPTH, img), (B.TUM_COLOR, img), (B.TUM_INFO, info)]]
    assert likely_topics(tum) == {"color": [B.TUM_COLOR], "depth": [B.TUM_DEPTH], "info": [B.TUM_INFO]}


def test_first_overlap_finds_same_inside_and_holding_paths(tmp_path):
    """The batch's input/output overlap check, each path resolved once (pairwise resolves took
    ~10 s for 200 recordings)."""
    from asymformer.robot.bags import first_overlap

    ins = [tmp_path / "in" / f"r{i}" for i in range(300)]
    outs = [tmp_path / "out" / f"r{i}" for i in range(300)]
    assert first_overlap(ins + [tmp_path / "in"], outs) is None
    assert first_overlap(ins, [*outs, ins[7]]) == (ins[7], ins[7])  # the same path
    assert first_overlap(ins, [ins[3] / "labelled"]) == (ins[3], ins[3] / "labelled")  # inside an input
    assert first_overlap(ins, [tmp_path / "in"])[1] == tmp_path / "in"  # holding the inputs
