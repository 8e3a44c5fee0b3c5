"""The node's parameters: checked at start (one line naming the parameter and the fix) and
while running (`ros2 param set`): which ones take effect at once, which need a restart (or, for
a lifecycle node, the next configure), and the reason a value is refused. Without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .messages import CONFIDENCE_ENCODINGS, OUTPUTS
from .pairing import DEFAULT_SLOP_S

IMAGE, COMPRESSED, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo"
# applied to the running node by `LiveSegmentation.update`; the others rebuild the model or the view
# the node's topic names (relative: remap or namespace them)
INPUT_TOPICS = {"rgb": "rgb", "depth": "depth", "camera_info": "camera_info"}
CLASS_TOPIC, LABEL_TOPIC = "class_info", "label_info"
LIVE_PARAMETERS = ("outputs", "alpha", "max_depth", "slop", "queue_depth", "stall_after_s", "confidence_encoding")


@dataclass
class NodeSettings:
    """The node's ROS parameters, checked (one clear error each)."""

    checkpoint: str = ""
    device: str = "auto"
    precision: str = "fp32"
    size: tuple[int, int] | None = None
    slop: float = DEFAULT_SLOP_S
    outputs: tuple[str, ...] = OUTPUTS
    class_info: bool = True
    queue_depth: int = 1
    alpha: float = 0.5
    max_depth: float | None = None
    stall_after_s: float = 5.0
    rerun: bool = False
    rerun_save: str = ""
    intrinsics: str = ""
    confidence_encoding: str = "32FC1"

    DEFAULTS = {"checkpoint": "", "device": "auto", "precision": "fp32", "size": "", "slop": DEFAULT_SLOP_S,
                "outputs": list(OUTPUTS), "class_info": True, "queue_depth": 1, "alpha": 0.5, "max_depth": 0.0,
                "stall_after_s": 5.0, "rerun": False, "rerun_save": "", "intrinsics": "",
                "confidence_encoding": "32FC1"}

    @classmethod
    def from_params(cls, params: dict) -> NodeSettings:
        """ROS parameter values (names as DEFAULTS) -> settings; ValueError naming the parameter."""
        unknown = sorted(set(params) - set(cls.DEFAULTS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(cls.DEFAULTS)}")
        p = {**cls.DEFAULTS, **params}
        if not p["checkpoint"]:
            raise ValueError("parameter 'checkpoint' is required: -p checkpoint:=/path/to/model.safetensors")
        outputs = p["outputs"]
        outputs = [o.strip() for o in outputs.split(",")] if isinstance(outputs, str) else list(outputs)
        outputs = [o for o in outputs if o]
        bad = sorted(set(outputs) - set(OUTPUTS))
        if bad:
            raise ValueError(f"parameter 'outputs': unknown {', '.join(bad)}; choose among {', '.join(OUTPUTS)}")
        size = _parse_size(p["size"])
        if not float(p["slop"]) >= 0:
            raise ValueError(f"parameter 'slop' must be >= 0 seconds, got {p['slop']}")
        if int(p["queue_depth"]) < 1:
            raise ValueError(f"parameter 'queue_depth' must be >= 1, got {p['queue_depth']}")
        if not 0.0 <= float(p["alpha"]) <= 1.0:
            raise ValueError(f"parameter 'alpha' must be between 0 and 1, got {p['alpha']}")
        if not float(p["stall_after_s"]) > 0:
            raise ValueError(f"parameter 'stall_after_s' must be > 0 seconds, got {p['stall_after_s']}")
        md = float(p["max_depth"])
        if not md >= 0:
            raise ValueError(f"parameter 'max_depth' must be >= 0 metres (0: keep all points), got {p['max_depth']}")
        if p["confidence_encoding"] not in CONFIDENCE_ENCODINGS:
            raise ValueError(f"parameter 'confidence_encoding' must be one of {', '.join(CONFIDENCE_ENCODINGS)}, "
                             f"got {p['confidence_encoding']!r}")
        return cls(str(p["checkpoint"]), str(p["device"]), str(p["precision"]), size, float(p["slop"]),
                   tuple(outputs), bool(p["class_info"]), int(p["queue_depth"]), float(p["alpha"]),
                   md if md > 0 else None, float(p["stall_after_s"]), bool(p["rerun"]), str(p["rerun_save"]),
                   str(p["intrinsics"]), str(p["confidence_encoding"]))


def _parse_size(text) -> tuple[int, int] | None:
    if text in ("", None):
        return None
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"parameter 'size' must be HxW, e.g. 480x640 (or empty for the frame's own), "
                         f"got {text!r}") from None
    if min(h, w) < 32:
        raise ValueError(f"parameter 'size' must be at least 32x32, got {text!r}")
    return h, w


def subscription_kind(role: str, topic: str, types: list[str]) -> str:
    """Which message class to subscribe `topic` (the resolved name of input `role`) with, from
    the types the graph reports: "Image", "CompressedImage" or "CameraInfo". ValueError (one
    line, with the remapping to fix it) for any other type."""
    want = (INFO,) if role == "camera_info" else (IMAGE, COMPRESSED)
    found = [t for t in types if t in want]
    if found:
        return found[0].rsplit("/", 1)[-1]
    expect = " or ".join(want)
    raise ValueError(f"topic {topic} ('{role}') has type {', '.join(types)}, expected {expect}; remap "
                     f"'{role}' to the right topic: --ros-args -r {role}:=/your/{role}/topic")


def changed_settings(settings: NodeSettings, current: dict, changes: dict, lifecycle: bool = False) -> NodeSettings:
    """The settings after `ros2 param set` of `changes` (name -> value) on a node whose parameter
    values are `current`: ValueError with the reason to refuse it (the value's own check, or
    "restart the node" for what the running model depends on; a lifecycle node takes those at
    its next configure, so they are accepted and the running settings stay)."""
    ours = {k: v for k, v in changes.items() if k in NodeSettings.DEFAULTS}  # use_sim_time & co: rclpy's own
    if not ours:
        return settings
    fixed = sorted(k for k in ours if k not in LIVE_PARAMETERS and ours[k] != current.get(k))
    merged = {**current, **ours}
    new = NodeSettings.from_params(merged)  # the value's own check first: a bad value is refused either way
    if fixed and not lifecycle:
        raise ValueError(f"parameter {', '.join(repr(k) for k in fixed)} cannot change while the node runs: "
                         "restart the node with the new value")
    if fixed:  # lifecycle: applied at the next configure
        live = {k: getattr(new, k) for k in LIVE_PARAMETERS}
        return replace(settings, **live)
    return new
