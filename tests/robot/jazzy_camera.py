"""A camera on ROS 2 Jazzy's rclpy (the LTS most robots run), for the interoperability test: run
with the Python of a separate venv holding the ros-jazzy-* wheels (tests/robot/ros2_harness.py
makes it), inside the test's network namespace. Publishes N frames of rgb8 + 16UC1 + CameraInfo
at 10 FPS on /j/{rgb,depth,camera_info} once a subscriber (the node, on Kilted) is there.

    python jazzy_camera.py N H W
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image


def main() -> int:
    n, h, w = (int(v) for v in sys.argv[1:4])
    rclpy.init()
    node = rclpy.create_node("jazzy_camera")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(t, f"/j/{k}", qos) for t, k in ((Image, "rgb"), (Image, "depth"),
                                                                   (CameraInfo, "camera_info"))]
    deadline = time.monotonic() + 120
    while not all(p.get_subscription_count() for p in pubs):
        if time.monotonic() > deadline:
            print("jazzy camera: no subscriber", flush=True)
            return 1
        time.sleep(0.05)
    print(f"jazzy camera: rclpy from {rclpy.__file__}", flush=True)
    rng = np.random.default_rng(0)
    for _ in range(n):
        stamp = time.time_ns()
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mm = rng.integers(500, 4000, (h, w), dtype=np.uint16)
        for p, msg in zip(pubs, (Image(height=h, width=w, encoding="rgb8", step=3 * w, data=rgb.tobytes()),
                                 Image(height=h, width=w, encoding="16UC1", step=2 * w, data=mm.tobytes()),
                                 CameraInfo(height=h, width=w, k=[50.0, 0, w / 2, 0, 50.0, h / 2, 0, 0, 1.0]))):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
            msg.header.frame_id = "jazzy_camera_optical_frame"
            p.publish(msg)
        time.sleep(0.1)
    print(f"jazzy camera: sent {n}", flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
