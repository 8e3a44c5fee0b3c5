"""Robot data: ROS messages in and out, colour/depth pairing by stamp, bag reading and writing.

No ROS installation is needed: `messages` converts sensor_msgs (Image, CompressedImage incl.
compressedDepth, CameraInfo) to arrays and segmentations to messages with numpy and Pillow,
for rosbags' message classes and rclpy's alike (the field names are the same); `pairing` pairs
colour with depth by header stamp; `bags` reads ROS 1 / ROS 2 recordings and writes rosbag2
with the `rosbags` package (the `robots` extra). Sits above deploy: cli -> robot -> deploy.

The names below are resolved on first use (as in `asymformer/__init__`): importing one robot
module, e.g. the node (`python -m asymformer.robot.node`), must not import torch before it has
checked its parameters.
"""

# Attribute -> module that defines it, imported on first use.
_EXPORTS = {
    "BagWriter": "bags", "list_topics": "bags", "open_bag": "bags", "BagFrames": "frames", "Frame": "frames",
    "MessageTypes": "messages", "camera_intrinsics": "messages", "class_info_message": "messages",
    "decode_color": "messages", "decode_depth": "messages", "is_compressed": "messages",
    "output_messages": "messages", "stamp_ns": "messages", "Pair": "pairing", "StampPairer": "pairing",
    "ResultWriter": "pipeline", "process_bag": "pipeline", "run_pipeline": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})
