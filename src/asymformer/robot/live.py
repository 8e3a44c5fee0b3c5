"""Everything the live ROS 2 node decides, without ROS: settings, topic types, pairing, the
streaming runtime, output messages, and why nothing comes out.

`robot/node.py` is a thin rclpy shell around `LiveSegmentation`: it turns ROS parameters into
`NodeSettings`, asks `subscription_kind` which message class a topic needs, forwards each
message to `on_color` / `on_depth` / `on_info`, and publishes what `publish(key, msg)` is given.
Because this file never imports rclpy, it is tested directly with rosbags' message classes.

Pairing (robot/pairing.StampPairer, shared with the bag tool) runs with no reorder allowance:
live messages arrive in stamp order, and every millisecond spent waiting is latency. Raw
messages wait in the pairer; only paired frames are decoded, then handed to the
`deploy.stream.StreamRunner`, which keeps the newest and drops the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asymformer.deploy.stream import StreamRunner

from .messages import OUTPUTS, camera_intrinsics, class_info_message, decode_color, decode_depth, output_messages
from .messages import stamp_ns as message_stamp
from .pairing import DEFAULT_SLOP_S, StampPairer

IMAGE, COMPRESSED, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo"
# input topics (relative: remap with -r rgb:=/camera/camera/color/image_raw) and output topics
INPUT_TOPICS = {"rgb": "rgb", "depth": "depth", "camera_info": "camera_info"}
CLASS_TOPIC = "class_info"


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

    DEFAULTS = {"checkpoint": "", "device": "auto", "precision": "fp32", "size": "", "slop": DEFAULT_SLOP_S,
                "outputs": list(OUTPUTS), "class_info": True, "queue_depth": 1, "alpha": 0.5, "max_depth": 0.0,
                "stall_after_s": 5.0, "rerun": False, "rerun_save": "", "intrinsics": ""}

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
        return cls(str(p["checkpoint"]), str(p["device"]), str(p["precision"]), size, float(p["slop"]),
                   tuple(outputs), bool(p["class_info"]), int(p["queue_depth"]), float(p["alpha"]),
                   md if md > 0 else None, float(p["stall_after_s"]), bool(p["rerun"]), str(p["rerun_save"]),
                   str(p["intrinsics"]))


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


@dataclass
class _Window:
    """Messages seen per input since the last stall report (for the reason of a stall)."""

    counts: dict = field(default_factory=lambda: {"color": 0, "depth": 0, "info": 0})
    since: float = field(default_factory=time.monotonic)


class LiveSegmentation:
    """Pair colour and depth messages, segment the newest pair, publish the outputs.

    segmenter: a `Segmenter`; types: a `robot.messages.MessageTypes` (rclpy's in the node);
    publish(key, msg): key among settings.outputs and "class_info"; topics: the resolved input
    names, for messages; clock: nanoseconds in the stamps' time base (the node's ROS clock);
    log(level, text): the node's logger; view: an optional `deploy.rerun_view.RerunView`.
    """

    def __init__(self, segmenter, settings: NodeSettings, types, publish: Callable, *, topics=None,
                 clock: Callable[[], int] = time.time_ns, log: Callable[[str, str], None] | None = None, view=None):
        self.settings, self.types, self.publish, self.view = settings, types, publish, view
        self.topics = {**INPUT_TOPICS, **(topics or {})}
        self.log = log or (lambda level, text: None)
        self.segmenter = segmenter
        self.pairer = StampPairer(slop_s=settings.slop, reorder_s=0.0)
        self.intrinsics = None
        if settings.intrinsics:
            from asymformer.deploy.points import Intrinsics

            self.intrinsics = Intrinsics.load(settings.intrinsics)
        self._window = _Window()
        self._warned: set[str] = set()
        self.warm_up_s: float | None = None  # seconds the first frame took through the model, before streaming
        self.published = dict.fromkeys((*settings.outputs, CLASS_TOPIC), 0)
        self.runner = StreamRunner(segmenter, queue_depth=settings.queue_depth, on_result=self._on_result,
                                   on_error=self._on_error, clock=clock, stall_after_s=settings.stall_after_s,
                                   on_warning=lambda text: self.log("warn", text), stall_hint=self.stall_hint,
                                   copy=False, depth_unit=1.0)

    def start(self) -> None:
        """Publish the class names and colours (latched by the node's QoS)."""
        if self.settings.class_info:
            self._send(CLASS_TOPIC, class_info_message(self.segmenter.class_names, self.segmenter.colors, self.types))

    # ------------------------------------------------------------------ inputs (executor thread)
    def on_color(self, msg) -> None:
        self._window.counts["color"] += 1
        self._submit(self.pairer.add_color(message_stamp(msg), msg))

    def on_depth(self, msg) -> None:
        self._window.counts["depth"] += 1
        self._submit(self.pairer.add_depth(message_stamp(msg), msg))

    def on_info(self, msg) -> None:
        self._window.counts["info"] += 1
        if self.settings.intrinsics:
            return  # the parameter wins
        try:
            self.intrinsics = camera_intrinsics(msg)
        except ValueError as exc:
            self._once("info", "error", f"{self.topics['camera_info']}: {exc}")

    def _submit(self, pairs) -> None:
        for pair in pairs:
            try:
                rgb, depth = decode_color(pair.color), decode_depth(pair.depth)
                if self.warm_up_s is None:  # once, on this thread: the model's fast path before the stream runs
                    self.warm_up_s = round(self.runner.warm_up(rgb, depth), 3)
                    self.log("info", f"model ready for {rgb.shape[0]}×{rgb.shape[1]} frames in {self.warm_up_s:.1f} s "
                                     "(built on the first frame; frames meanwhile were dropped)")
                self.runner.submit(rgb, depth, pair.stamp_ns, meta={"header": pair.color.header,
                                                                     "intrinsics": self.intrinsics})
            except ValueError as exc:  # a bad frame: say it once per kind of problem, keep going
                self._once(f"frame:{type(exc).__name__}:{str(exc)[:40]}", "error", f"frame dropped: {exc}")
            except RuntimeError:
                if not self.runner.closed:  # a message arriving while the node shuts down is ignored
                    raise

    # ------------------------------------------------------------------ outputs (worker thread)
    def _on_result(self, result) -> None:
        intr = result.meta["intrinsics"]
        outputs = self.settings.outputs
        if "points" in outputs and intr is None:
            outputs = tuple(o for o in outputs if o != "points")
            self._once("points", "warn", f"no camera info on {self.topics['camera_info']} yet: points are not "
                                         f"published (remap camera_info:=... or set the 'intrinsics' parameter)")
        if intr is not None and (intr.width, intr.height) not in ((None, None), result.frame_size[::-1]):
            outputs = tuple(o for o in outputs if o != "points")
            intr = None
            self._once("size", "warn", "the camera info is for another image size than the colour frames: points "
                                       "are not published (use the colour camera's camera_info, and aligned depth)")
        msgs = output_messages(result.segmentation, result.meta["header"], self.types, rgb=result.rgb,
                               depth_m=result.depth, intrinsics=intr, outputs=outputs,
                               class_colors=self.segmenter.colors, alpha=self.settings.alpha,
                               max_depth=self.settings.max_depth)
        for key, msg in msgs.items():
            self._send(key, msg)
        if self.view is not None:
            self.view.log_result(result, intr, dropped=self.runner.stats()["dropped"])

    def _send(self, key: str, msg) -> None:
        self.publish(key, msg)
        self.published[key] += 1

    def _on_error(self, exc: BaseException) -> None:
        self._once(f"err:{type(exc).__name__}", "error", f"segmentation failed: {type(exc).__name__}: {exc}")

    def _once(self, key: str, level: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log(level, text)

    # ------------------------------------------------------------------ diagnosis
    def stall_hint(self) -> str | None:
        """What the inputs did since the last report: the reason a user can act on."""
        w, self._window = self._window, _Window()
        c, d = w.counts["color"], w.counts["depth"]
        secs = time.monotonic() - w.since
        rgb, depth = self.topics["rgb"], self.topics["depth"]
        if c == 0 and d == 0:
            return (f"nothing arrived on {rgb} or {depth} in {secs:.1f} s: is the camera running, are the topics "
                    f"remapped (-r rgb:=... -r depth:=...), and do the QoS settings match?")
        if d == 0:
            return f"{c} colour frames but no depth on {depth} in {secs:.1f} s: check the depth topic (-r depth:=...)"
        if c == 0:
            return f"{d} depth frames but no colour on {rgb} in {secs:.1f} s: check the colour topic (-r rgb:=...)"
        s = self.pairer.stats()
        return (f"{c} colour and {d} depth frames in {secs:.1f} s but none paired within slop "
                f"{s['slop_ms']:.0f} ms ({s['unpaired_color']} colour unpaired so far): raise the 'slop' parameter, "
                f"or check that both come from the same camera and clock")

    def stats(self) -> dict:
        return self._with_node_stats(self.runner.stats())

    def close(self) -> dict:
        stats = self.runner.close(drain=False)
        if self.view is not None:
            self.view.close()
        return self._with_node_stats(stats)

    def _with_node_stats(self, runner_stats: dict) -> dict:
        return {**runner_stats, "pairing": self.pairer.stats(), "published": dict(self.published),
                "warm_up_s": self.warm_up_s}
