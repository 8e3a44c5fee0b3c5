"""The scenarios tests/robot/ros2_driver.py runs inside the private network namespace: each
starts a few node processes and drives them over DDS, then writes what it saw into `result`
(asserted by tests/robot/test_node.py). Few node processes, several checks each: a node's
start (Python, torch, rclpy, the model) costs seconds."""

from __future__ import annotations

import time

from tests.robot.live_helpers import H, W
from tests.robot.ros2_driver import BEST_EFFORT, LATCHED, RELIABLE, Camera, NodeProc, Observer, call, set_params, wait

N = 12  # frames per stream
BIG = 60  # raw 480×640 frames at 30 FPS to node c


def stream(node, ckpt, out, result):
    """Three nodes: /a raw rgb8 + 32FC1 from reliable publishers, /b PNG + compressedDepth from
    best-effort ones (mono8 confidence); labels, run-time parameters, a late class_info
    subscriber, /diagnostics, and Ctrl-C's closing line; /c raw 480×640 rgb8 + 16UC1 at 30 FPS
    (0.9 + 0.6 MB a frame: more than Fast DDS's default shared-memory segment)."""
    import numpy as np

    common = ("-p", f"checkpoint:={ckpt}", "-p", f"size:={H}x{W}")
    a = NodeProc("a", "-r", "__ns:=/a", *common)
    b = NodeProc("b", "-r", "__ns:=/b", *common, "-p", "confidence_encoding:=mono8")
    c = NodeProc("c", "-r", "__ns:=/c", *common, "-p", "outputs:=[labels]")
    jazzy = jazzy_camera(node, ckpt)  # the interoperability check rides along (no extra wait)
    cams = {"a": Camera(node, "/a", "raw32", RELIABLE), "b": Camera(node, "/b", "compressed", BEST_EFFORT)}
    obs = {"a": Observer(node, "/a"), "b": Observer(node, "/b")}
    big = Camera(node, "/c", "raw16", RELIABLE)
    result["ready"] = all(p.wait_line("model ready", 120) for p in (a, b, c))
    result["connected"] = all(cam.connected(60) for cam in (*cams.values(), big))
    time.sleep(0.5)
    for i in range(N):
        stamp = time.time_ns()
        for cam in cams.values():
            cam.publish(i, stamp)
        time.sleep(0.1)
    rng = np.random.default_rng(0)
    frames = [(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
               rng.integers(500, 4000, (480, 640), dtype=np.uint16)) for _ in range(2)]
    t_next = time.perf_counter()
    for i in range(BIG):
        big.publish(i, time.time_ns(), *frames[i % 2])
        t_next += 1 / 30
        time.sleep(max(0.0, t_next - time.perf_counter()))
    wait(lambda: all(len(o.got["labels"]) >= N - 1 for o in obs.values()))
    result["params"] = set_params(node, "/a/asymformer", alpha=2.0, size="64x64", outputs=["labels"], slop=0.05)
    before = {k: len(v) for k, v in obs["a"].got.items()}
    for i in range(5):
        cams["a"].publish(i, time.time_ns())
        time.sleep(0.1)
    wait(lambda: len(obs["a"].got["labels"]) >= before["labels"] + 4)
    time.sleep(1.2)  # one more /diagnostics
    result["after_params"] = {k: len(v) - before[k] for k, v in obs["a"].got.items()}
    from std_msgs.msg import String

    late = []
    node.create_subscription(String, "/a/class_info", late.append, LATCHED)
    wait(lambda: late, timeout=10)
    result["late_class_info"] = [m.data for m in late]
    result["nodes"] = {"a": a.stop(), "b": b.stop(), "c": c.stop()}
    result["sent"] = {**{k: len(cam.sent) for k, cam in cams.items()}, "c": len(big.sent)}
    result["stamps"] = {k: cam.sent for k, cam in cams.items()}
    result["observed"] = {k: o.summary() for k, o in obs.items()}
    for k, o in obs.items():
        o.labels_npz(out / f"labels_{k}.npz")
    if jazzy is not None:
        result["jazzy"] = jazzy_result(*jazzy)


def jazzy_camera(driver, ckpt):
    """With ASYMFORMER_JAZZY_PYTHON (a Python with ROS 2 Jazzy's wheels): a node on Kilted under
    /j and a camera process on Jazzy feeding it; None without."""
    import os

    python = os.environ.get("ASYMFORMER_JAZZY_PYTHON")
    if not python:
        return None
    node = NodeProc("j", "-r", "__ns:=/j", "-p", f"checkpoint:={ckpt}", "-p", f"size:={H}x{W}",
                    "-p", "outputs:=[labels]")
    return python, node, Observer(driver, "/j", outputs=("labels",))


def jazzy_result(python, node, obs) -> dict:
    """The Jazzy camera publishes once the node on Kilted is ready; what the node made of it."""
    import os
    import subprocess
    from pathlib import Path

    ready = node.wait_line("model ready", 60)
    script = Path(__file__).with_name("jazzy_camera.py")
    # the Kilted wheels' bootstrapper set LD_LIBRARY_PATH (and a done-flag) for this process: the
    # Jazzy venv's own bootstrapper must start clean
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
                                                             "AMENT_PREFIX_PATH") and not k.startswith("_ROS_WHEELS")}
    camera = subprocess.run([python, str(script), str(N), str(H), str(W)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, timeout=120)
    wait(lambda: len(obs.got["labels"]) >= N - 1, timeout=10)
    return {"ready": ready, "camera_rc": camera.returncode, "camera_out": camera.stdout, "node": node.stop(),
            "observed": obs.summary()}


def lifecycle(node, ckpt, out, result):
    """`--lifecycle` with use_sim_time and a /clock publisher: driven through change_state /
    get_state; nothing published unless active; stamps, latency and diagnostics on sim time."""
    import threading

    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rosgraph_msgs.msg import Clock

    t0_ns, wall0 = 1_000 * 10**9, time.monotonic_ns()
    sim_now = [t0_ns]
    clock_pub = node.create_publisher(Clock, "/clock", 10)
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            sim_now[0] = t0_ns + (time.monotonic_ns() - wall0)
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(sim_now[0], 10**9)
            clock_pub.publish(msg)
            time.sleep(0.01)

    threading.Thread(target=tick, daemon=True).start()
    lc = NodeProc("lc", "-p", f"checkpoint:={ckpt}", "-p", f"size:={H}x{W}", "-p", "use_sim_time:=true",
                  lifecycle=True)
    cam, obs = Camera(node, "", "raw16", RELIABLE), Observer(node, "")
    get = node.create_client(GetState, "/asymformer/get_state")
    change = node.create_client(ChangeState, "/asymformer/change_state")
    result["services"] = get.wait_for_service(timeout_sec=90) and change.wait_for_service(timeout_sec=30)
    states, labels = [], []

    def state():
        states.append(call(get, GetState.Request()).current_state.label)

    def transition(tid):
        req = ChangeState.Request()
        req.transition.id = tid
        return bool(call(change, req, timeout=60).success)

    def frames(n):
        for i in range(n):
            cam.publish(i, sim_now[0])
            time.sleep(0.1)
        time.sleep(0.5)
        labels.append(len(obs.got["labels"]))

    state()
    result["configure"] = transition(Transition.TRANSITION_CONFIGURE)
    state()
    result["ready"] = lc.wait_line("model ready", 60) and cam.connected(30)
    frames(8)  # inactive: nothing published
    result["activate"] = transition(Transition.TRANSITION_ACTIVATE)
    state()
    frames(10)
    wait(lambda: len(obs.got["labels"]) >= 9, timeout=10)
    labels.append(len(obs.got["labels"]))
    time.sleep(1.5)  # /diagnostics on sim time
    result["deactivate"] = transition(Transition.TRANSITION_DEACTIVATE)
    state()
    frames(6)
    result["cleanup"] = transition(Transition.TRANSITION_CLEANUP)
    state()
    result["states"], result["labels"] = states, labels
    result["sim_range_s"] = [t0_ns / 1e9, sim_now[0] / 1e9]
    result["observed"] = obs.summary()
    result["nodes"] = {"lc": lc.stop()}
    stop.set()


BAD_PARAMS = {"size": "size:=abc", "outputs": "outputs:=[bogus]", "slop": "slop:=-1.0", "device": "device:=cuda",
              "checkpoint": "checkpoint:=/nonexistent/model.safetensors"}


def publish_until(cam, cond, timeout: float = 20.0, **kw) -> bool:
    """Frames at 10 FPS (stamped now) until cond() holds."""
    deadline, i = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        if cond():
            return True
        cam.publish(i, time.time_ns(), **kw)
        i += 1
        time.sleep(0.1)
    return cond()


def bad_input(node, ckpt, out, result):
    """Bad parameters at start, a topic of the wrong type, Ctrl-C during the warm-up, and a
    running node fed colour without depth, camera info for another size, frames changing size."""
    import numpy as np
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    bad = {k: NodeProc(k, "-r", f"__node:=bad_{k}", "-p", f"checkpoint:={ckpt}", "-p", v)
           for k, v in BAD_PARAMS.items()}
    result["bad"] = {k: p.stop(timeout=90) if p.proc.wait(90) is not None else None for k, p in bad.items()}
    wrong = NodeProc("wrong", "-r", "__ns:=/w", "-p", f"checkpoint:={ckpt}", "-p", f"size:={H}x{W}")
    wrong_pubs = [node.create_publisher(t, f"/w/{name}", RELIABLE)
                  for t, name in ((Image, "rgb"), (PointCloud2, "depth"), (CameraInfo, "camera_info"))]
    warm = NodeProc("warm", "-r", "__ns:=/ww", "-p", f"checkpoint:={ckpt}", "-p", "size:=480x640")
    run = NodeProc("run", "-r", "__ns:=/r", "-p", f"checkpoint:={ckpt}", "-p", "stall_after_s:=1.0",
                   "-p", "outputs:=[labels, points]")
    cam, obs = Camera(node, "/r", "raw16", RELIABLE), Observer(node, "/r", outputs=("labels", "points"))
    result["warm_seen"] = warm.wait_line("warming up the model", 90)
    result["warm"] = warm.stop()
    result["wrong"] = wrong.stop(timeout=60) if wrong.proc.wait(60) is not None else wrong.stop()
    del wrong_pubs
    result["connected"] = run.wait_line("'camera_info': /r/camera_info", 90) and cam.connected(30)

    def stalled_no_depth():
        return any(s["name"] == "/r/asymformer: segmentation" and s["level"] == 2 and "no depth" in s["message"]
                   for d in obs.summary()["diagnostics"] for s in d["status"])

    # colour (and camera info) without depth: the node says why nothing comes out, and goes on
    result["no_depth_reported"] = publish_until(cam, stalled_no_depth, timeout=15, color_only=True)
    stage = {}
    # depth too, but the camera info is for another size: labels, no points
    publish_until(cam, lambda: len(obs.got["labels"]) >= 5, timeout=30, info_size=(W * 2, H * 2))
    stage["labels_other_info"], stage["points_other_info"] = len(obs.got["labels"]), len(obs.got["points"])
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), rng.integers(500, 4000, (32, 48), dtype=np.uint16)
    publish_until(cam, lambda: (32, 48) in {(m.height, m.width) for m in obs.got["labels"]}, timeout=30,
                  rgb=small[0], mm=small[1])  # the camera switches to 32×48
    result["stages"] = stage
    result["observed"] = obs.summary()
    result["nodes"] = {"run": run.stop()}
