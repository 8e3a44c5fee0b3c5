"""The rclpy shell (robot/node.py) against tests/robot/fake_rclpy.py: parameters, remapped
relative topics, the message class chosen from the topic's type (raw / compressed), QoS,
publishers of the chosen outputs, waiting for a topic to appear, a topic of the wrong type, a
parameter of the wrong type, and no ROS at all -- each as one clear line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from asymformer.robot import node as node_mod

from . import fake_rclpy
from .live_helpers import H, W, messages, rrd_reader, save_checkpoint, wait_for

CAM = "/camera/camera"
RGB, DEPTH, INFO = f"{CAM}/color/image_raw", f"{CAM}/aligned_depth_to_color/image_raw", f"{CAM}/color/camera_info"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("node") / "tiny.safetensors")


def argv(checkpoint, *extra, depth=DEPTH):
    return ["node", "--ros-args", "-r", f"rgb:={RGB}", "-r", f"depth:={depth}", "-r", f"camera_info:={INFO}",
            "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", *extra]


GRAPH = {RGB: ["sensor_msgs/msg/Image"], DEPTH: ["sensor_msgs/msg/Image"], INFO: ["sensor_msgs/msg/CameraInfo"],
         f"{DEPTH}/compressedDepth": ["sensor_msgs/msg/CompressedImage"], "/tf": ["tf2_msgs/msg/TFMessage"]}


def test_the_node_subscribes_by_type_and_publishes_the_chosen_outputs(monkeypatch, checkpoint, tmp_path):
    seen = {}

    def script(node):
        subs = node.subscriptions
        seen["subs"] = {t: (s.msg_type.__msgtype__, s.qos_profile.depth, int(s.qos_profile.reliability))
                        for t, s in subs.items()}
        for i in range(3):
            color, depth, info = messages(i, compressed=False)
            _, cdepth, _ = messages(i, compressed=True)
            subs[INFO].deliver(info)
            subs[RGB].deliver(color)
            subs[f"{DEPTH}/compressedDepth"].deliver(cdepth)
            # keep-latest drops a pair that arrives while the previous one waits: on a loaded machine
            # the back-to-back deliveries of a test would race the runtime, so wait for each result
            assert wait_for(lambda i=i: len(node.publishers["/points"].sent) >= i)
        seen["pubs"] = {t: p for t, p in node.publishers.items()}

    state = fake_rclpy.install(monkeypatch, GRAPH, script)
    rrd = tmp_path / "node.rrd"
    rc = node_mod.main(argv(checkpoint, "-p", "outputs:=[labels, points]", "-p", f"rerun_save:={rrd}",
                            depth=f"{DEPTH}/compressedDepth"))
    assert rc == 0
    assert seen["subs"] == {RGB: ("sensor_msgs/msg/Image", 1, 2), INFO: ("sensor_msgs/msg/CameraInfo", 1, 2),
                            f"{DEPTH}/compressedDepth": ("sensor_msgs/msg/CompressedImage", 1, 2)}
    pubs = seen["pubs"]
    assert set(pubs) == {"/labels", "/points", "/class_info"}  # relative names under the node's namespace
    assert int(pubs["/class_info"].qos_profile.durability) == 1 and int(pubs["/labels"].qos_profile.reliability) == 1
    assert json.loads(pubs["/class_info"].sent[0].data)["classes"][1]["name"] == "floor"
    lab = pubs["/labels"].sent[0]
    assert (lab.height, lab.width, lab.encoding) == (H, W, "mono8") and lab.header.frame_id
    assert np.frombuffer(bytes(lab.data), np.uint8).max() < 3
    node = state["nodes"][0]
    assert node.destroyed and state["shutdown"] and node.timers[0].canceled  # all inputs found: no more polling
    rec = rrd_reader().read_rrd(rrd)  # the rerun_save parameter: one frame per published result
    assert len(rec["/world/camera/image/segmentation"]) == len(pubs["/labels"].sent)
    assert len(rec["/stats/latency_ms"]) == len(pubs["/labels"].sent) and "/world/camera/points" in rec




def test_the_node_waits_for_a_topic_then_subscribes(monkeypatch, checkpoint):
    graph = {k: v for k, v in GRAPH.items() if k != DEPTH}

    def script(node):
        logs = node.get_logger().records
        assert ("info", f"waiting for {DEPTH} ('depth'; remap with -r depth:=/your/topic)") in logs
        assert DEPTH not in node.subscriptions and RGB in node.subscriptions
        fake_rclpy.STATE["graph"][DEPTH] = ["sensor_msgs/msg/Image"]  # the camera came up
        node.timers[0].fire()
        assert node.subscriptions[DEPTH].msg_type.__msgtype__ == "sensor_msgs/msg/Image"

    fake_rclpy.install(monkeypatch, graph, script)
    assert node_mod.main(argv(checkpoint)) == 0


def test_a_topic_of_the_wrong_type_stops_the_node_with_one_line(monkeypatch, checkpoint, capsys):
    graph = {**GRAPH, DEPTH: ["sensor_msgs/msg/PointCloud2"]}
    state = fake_rclpy.install(monkeypatch, graph, lambda node: pytest.fail("must not spin"))
    assert node_mod.main(argv(checkpoint)) == 2
    errors = [t for level, t in state["nodes"][0].get_logger().records if level == "error"]
    assert errors == [f"topic {DEPTH} ('depth') has type sensor_msgs/msg/PointCloud2, expected sensor_msgs/msg/Image "
                      f"or sensor_msgs/msg/CompressedImage; remap 'depth' to the right topic: --ros-args -r "
                      f"depth:=/your/depth/topic"]
    assert state["nodes"][0].destroyed


@pytest.mark.parametrize(("param", "message"), [
    ("slop:=1", "parameter 'slop': Trying to set parameter 'slop' to '1' of type 'int', expecting type 'float'"),
    ("outputs:=[labels, masks]", "parameter 'outputs': unknown masks"),
    ("checkpoint:=''", "parameter 'checkpoint' is required"),
])
def test_bad_parameters_are_one_line(monkeypatch, checkpoint, capsys, param, message):
    fake_rclpy.install(monkeypatch, GRAPH, lambda node: pytest.fail("must not spin"))
    assert node_mod.main(argv(checkpoint, "-p", param)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"asymformer node: {message}") and "\n" not in err


def test_without_ros_one_line_says_to_source_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rclpy", None)
    assert node_mod.main(["node"]) == 2
    assert capsys.readouterr().err.strip() == node_mod.NO_ROS
