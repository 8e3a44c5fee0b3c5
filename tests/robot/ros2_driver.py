"""Runs INSIDE a private network namespace (tests/robot/ros2_harness.py starts it there): the
camera side and the observers of one test scenario, on the real rclpy, plus the node processes
under test (started from here, so they share the namespace). Never import this in pytest.

    python tests/robot/ros2_driver.py SCENARIO OUT_DIR CHECKPOINT

writes OUT_DIR/result.json (what each node printed, its exit code, the messages observed) and
OUT_DIR/labels_*.npz (label images by stamp) for the test to check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.robot.* helpers

from asymformer.robot.dds_profile import PROFILE  # noqa: E402

# the camera side uses the node's Fast DDS profile, as docs/live.md tells a camera's process to
# (before rclpy makes this process's participant); the node processes choose their own
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(PROFILE))

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from tests.robot import rosmsgs as R  # noqa: E402
from tests.robot.live_helpers import CX, CY, FX, FY, H, W, frame  # noqa: E402

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class NodeProc:
    """One `python -m asymformer.robot.node` process; its output collected line by line."""

    def __init__(self, name: str, *args: str, lifecycle: bool = False):
        self.name = name
        cmd = [sys.executable, "-u", "-m", "asymformer.robot.node", *(["--lifecycle"] if lifecycle else []),
               "--ros-args", "-p", "device:=cpu", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RCUTILS_LOGGING_BUFFERED_STREAM": "0"}
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the camera's: the node picks its own
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.started = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return any(text in line for line in self.lines)
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 30.0) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed"
        time.sleep(0.1)
        return {"rc": rc, "lines": self.lines, "seconds": round(time.monotonic() - self.started, 2)}


def header(stamp_ns: int, frame_id: str = R.FRAME):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def image(arr: np.ndarray, encoding: str, stamp_ns: int):
    from sensor_msgs.msg import Image

    a = np.ascontiguousarray(arr)
    h, w = a.shape[:2]
    return Image(header=header(stamp_ns), height=h, width=w, encoding=encoding, is_bigendian=0,
                 step=w * (a.shape[2] if a.ndim == 3 else 1) * a.dtype.itemsize, data=a.tobytes())


def compressed(fmt: str, data: bytes, stamp_ns: int):
    from sensor_msgs.msg import CompressedImage

    return CompressedImage(header=header(stamp_ns), format=fmt, data=bytes(data))


def camera_info(stamp_ns: int, w: int = W, h: int = H):
    from sensor_msgs.msg import CameraInfo

    return CameraInfo(header=header(stamp_ns), width=w, height=h, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      p=[FX, 0.0, CX, 0.0, 0.0, FY, CY, 0.0, 0.0, 0.0, 1.0, 0.0])


class Camera:
    """Publishes frame i of tests/robot/live_helpers.frame as colour + depth + camera info.
    kind: "raw16" (rgb8 + 16UC1), "raw32" (rgb8 + 32FC1 metres, NaN invalid), "compressed"
    (png colour + compressedDepth png 16UC1)."""

    def __init__(self, node, ns: str, kind: str, qos=RELIABLE):
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.kind = kind
        img = CompressedImage if kind == "compressed" else Image
        self.rgb = node.create_publisher(img, f"{ns}/rgb", qos)
        self.depth = node.create_publisher(img, f"{ns}/depth", qos)
        self.info = node.create_publisher(CameraInfo, f"{ns}/camera_info", qos)
        self.sent: list[int] = []

    def connected(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        pubs = (self.rgb, self.depth, self.info)
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in pubs):
                return True
            time.sleep(0.05)
        return False

    def publish(self, i: int, stamp_ns: int, rgb=None, mm=None, info_size=None, color_only=False) -> None:
        if rgb is None:
            rgb, mm = frame(i)
        if self.kind == "compressed":
            color = compressed("rgb8; png compressed rgb8", R.encode(rgb, "PNG"), stamp_ns)
            cd = R.compressed_depth_16(mm, "png", stamp_ns)
            depth = compressed(cd.format, bytes(cd.data), stamp_ns)
        else:
            color = image(rgb, "rgb8", stamp_ns)
            if self.kind == "raw32":
                m = (mm / 1000).astype(np.float32)
                m[mm == 0] = np.nan
                depth = image(m, "32FC1", stamp_ns + 1_000_000)
            else:
                depth = image(mm, "16UC1", stamp_ns + 1_000_000)
        w, h = info_size or (rgb.shape[1], rgb.shape[0])
        self.info.publish(camera_info(stamp_ns, w, h))
        self.rgb.publish(color)
        if not color_only:
            self.depth.publish(depth)
        self.sent.append(stamp_ns)


class Observer:
    """Subscribes to a node's outputs and /diagnostics; keeps what arrives."""

    def __init__(self, node, ns: str, outputs=("labels", "confidence", "overlay", "points")):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image, PointCloud2
        from std_msgs.msg import String

        self.got = {k: [] for k in (*outputs, "class_info", "diagnostics")}
        for key in outputs:
            node.create_subscription(PointCloud2 if key == "points" else Image, f"{ns}/{key}",
                                     lambda m, k=key: self.got[k].append(m), RELIABLE)
        node.create_subscription(String, f"{ns}/class_info", lambda m: self.got["class_info"].append(m), LATCHED)
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.got["diagnostics"].append(m), 50)

    def labels_npz(self, path: Path) -> None:
        arrays = {}
        for m in self.got["labels"]:
            stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
            arrays[str(stamp)] = np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width)
        np.savez(path, **arrays)

    def summary(self) -> dict:
        out = {k: len(v) for k, v in self.got.items()}
        out["class_info_data"] = [m.data for m in self.got["class_info"]]
        out["label_sizes"] = sorted({(m.height, m.width) for m in self.got["labels"]})
        out["confidence_encodings"] = sorted({m.encoding for m in self.got.get("confidence", [])})
        out["points_fields"] = [f.name for f in self.got["points"][0].fields] if self.got.get("points") else []
        out["diagnostics"] = [{"stamp_s": d.header.stamp.sec + d.header.stamp.nanosec / 1e9,
                               "status": [{"name": s.name, "level": int.from_bytes(s.level, "little")
                                           if isinstance(s.level, bytes) else int(s.level), "message": s.message,
                                           "values": {kv.key: kv.value for kv in s.values}} for s in d.status]}
                              for d in self.got["diagnostics"]]
        return out


def set_params(node, target: str, **values) -> list[dict]:
    """rcl_interfaces/srv/SetParameters on `target` (a node's full name); one result per value."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = node.create_client(SetParameters, f"{target}/set_parameters")
    assert client.wait_for_service(timeout_sec=20), f"{target}/set_parameters not available"
    params = []
    for name, v in values.items():
        pv = ParameterValue()
        if isinstance(v, float):
            pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, v
        elif isinstance(v, list):
            pv.type, pv.string_array_value = ParameterType.PARAMETER_STRING_ARRAY, v
        else:
            pv.type, pv.string_value = ParameterType.PARAMETER_STRING, v
        params.append(Parameter(name=name, value=pv))
    out = []
    for p in params:  # one call each: each gets its own verdict
        res = call(client, SetParameters.Request(parameters=[p]))
        out.append({"name": p.name, "successful": bool(res.results[0].successful), "reason": res.results[0].reason})
    node.destroy_client(client)
    return out


def call(client, request, timeout: float = 30.0):
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from {client.srv_name}")
        time.sleep(0.02)
    return future.result()


def stream(camera: Camera, n: int, fps: float = 10.0, **kw) -> None:
    """n frames at `fps`, stamped with the wall clock (the node's clock without sim time)."""
    for i in range(n):
        camera.publish(i, time.time_ns(), **kw)
        time.sleep(1.0 / fps)


def wait(cond, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def main() -> int:
    scenario, out_dir, checkpoint = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    from tests.robot import ros2_scenarios

    rclpy.init()
    node = rclpy.create_node("test_driver")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    result: dict = {}
    try:
        getattr(ros2_scenarios, scenario)(node, checkpoint, out_dir, result)
    except BaseException as exc:  # noqa: BLE001 - reported to the test, with what was gathered
        import traceback

        result["driver_error"] = "".join(traceback.format_exception(exc))
    finally:
        (out_dir / "result.json").write_text(json.dumps(result, default=str, indent=1))
        executor.shutdown(timeout_sec=2)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
