"""Robot data: ROS messages in and out, colour/depth pairing by stamp, bag reading and writing.

No ROS installation is needed: `messages` converts sensor_msgs (Image, CompressedImage incl.
compressedDepth, CameraInfo) to arrays and segmentations to messages with numpy and Pillow,
for rosbags' message classes and rclpy's alike (the field names are the same); `pairing` pairs
colour with depth by header stamp; `bags` reads ROS 1 / ROS 2 recordings and writes rosbag2
with the `rosbags` package (the `robots` extra). Sits above deploy: cli -> robot -> deploy.
"""

from .bags import BagWriter, list_topics, open_bag
from .frames import BagFrames, Frame
from .messages import (
    MessageTypes,
    camera_intrinsics,
    class_info_message,
    decode_color,
    decode_depth,
    is_compressed,
    output_messages,
    stamp_ns,
)
from .pairing import Pair, StampPairer
from .pipeline import ResultWriter, process_bag, run_pipeline

__all__ = ["BagFrames", "BagWriter", "Frame", "MessageTypes", "Pair", "ResultWriter", "StampPairer",
           "camera_intrinsics", "class_info_message", "decode_color", "decode_depth", "is_compressed", "list_topics",
           "open_bag", "output_messages", "process_bag", "run_pipeline", "stamp_ns"]
