"""Robot data: ROS messages in and out, colour/depth pairing by stamp, bag reading and writing.

No ROS installation is needed: `messages` converts sensor_msgs (Image, CompressedImage incl.
compressedDepth, CameraInfo) to arrays and segmentations to messages with numpy and Pillow,
for rosbags' message classes and rclpy's alike (the field names are the same); `pairing` pairs
colour with depth by header stamp; `bags` reads ROS 1 / ROS 2 recordings and writes rosbag2
with the `rosbags` package (the `robots` extra). Sits above deploy: cli -> robot -> deploy.
"""

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

__all__ = ["MessageTypes", "Pair", "StampPairer", "camera_intrinsics", "class_info_message", "decode_color",
           "decode_depth", "is_compressed", "output_messages", "stamp_ns"]
