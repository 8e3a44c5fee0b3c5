"""The rclpy side of the node: parameters, topics, publishers, /diagnostics, run-time parameter
changes, and the lifecycle steps (configure / activate / deactivate / cleanup) that both the
plain node and the managed one (`--lifecycle`) go through. Decisions live in robot/live.py,
robot/node_settings.py and robot/counting.py (tested without ROS); this file only wires them to
rclpy, and is tested on the real rclpy (tests/robot/test_node.py, in a private network namespace).

Real-rclpy rules followed here: the logger binds one severity to each call site, so each level
is logged from its own line (`_Log`); nothing slow runs on the executor thread (decoding and the
model's warm-up run on LiveSegmentation's intake thread; only a lifecycle `configure` loads the
model synchronously, as its caller expects).
"""

from __future__ import annotations

from .counting import diagnostic_values, health
from .node_settings import CLASS_TOPIC, INPUT_TOPICS, LABEL_TOPIC, NodeSettings, changed_settings, subscription_kind

DIAGNOSTICS_TOPIC = "/diagnostics"


class _Log:
    """log(level, text) for LiveSegmentation, one rclpy call site per severity."""

    def __init__(self, logger):
        self.logger = logger

    def __call__(self, level: str, text: str) -> None:
        if level == "error":
            self.logger.error(text)
        elif level == "warn":
            self.logger.warning(text)
        else:
            self.logger.info(text)


def qos_profiles():
    """(inputs, outputs, latched): best-effort sensor data at depth 5; reliable depth 1; reliable
    transient-local. Inputs keep 5: the executor takes them all (cheap: count, pair, keep the
    newest pair), so a short stall of the executor thread (the GIL) costs no frames, and the
    older pairs are counted as stale instead of vanishing inside DDS."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
    out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return sensor, out, latched


class NodeShell:
    """Everything one rclpy node (plain or lifecycle) holds for the segmentation.

    `configure()` checks the parameters and loads the model (ValueError / FileNotFoundError /
    ImportError: one line naming the parameter); the warm-up then runs off the executor.
    `activate()` / `deactivate()` switch publishing; `cleanup()` frees the model.
    `error` holds a setup error found while spinning (a topic of the wrong type): main exits 2.
    """

    def __init__(self, node, lifecycle: bool = False, segmenter_factory=None):
        self.node, self.lifecycle = node, lifecycle
        self.log = _Log(node.get_logger())
        self.segmenter_factory = segmenter_factory or _segmenter
        self.params = {name: _declare(node, name, value) for name, value in NodeSettings.DEFAULTS.items()}
        self.live = None  # a LiveSegmentation once configured
        self.settings: NodeSettings | None = None
        self.error: str | None = None
        self.pubs, self.subs, self._timers = {}, {}, []
        self.busy = False  # a warm-up still running after cleanup
        self._waiting_said: set[str] = set()
        self.topics = {role: node.resolve_topic_name(name) for role, name in INPUT_TOPICS.items()}
        from diagnostic_msgs.msg import DiagnosticArray

        self._diag_pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # ------------------------------------------------------------------ lifecycle steps
    def configure(self) -> None:
        from asymformer.robot.messages import MessageTypes

        self.params = {name: self.node.get_parameter(name).value for name in NodeSettings.DEFAULTS}
        settings = NodeSettings.from_params(self.params)  # a bad value: one line, before torch loads (seconds)
        from .live import LiveSegmentation

        seg = self.segmenter_factory(settings)
        view = _view(settings, seg)
        self.types = MessageTypes.from_rclpy()
        self.settings = settings
        for key in (*settings.outputs, CLASS_TOPIC, *([LABEL_TOPIC] if self.types.LabelInfo else [])):
            self._publisher(key)
        clock = self.node.get_clock()
        self.live = LiveSegmentation(seg, settings, self.types, self._publish, topics=self.topics,
                                     clock=lambda: clock.now().nanoseconds, log=self.log, view=view, active=False)
        self.live.start()
        self._timers = [self.node.create_timer(0.5, self._guard(self.connect)),
                        self.node.create_timer(1.0, self._guard(self.publish_diagnostics))]
        self.log("info", f"segmenting with {seg!r}; outputs: {', '.join(settings.outputs) or 'none'}")

    def activate(self) -> None:
        self.live.set_active(True)

    def deactivate(self) -> None:
        if self.live is not None:
            self.live.set_active(False)

    def cleanup(self) -> dict | None:
        """Stop the runtime, free the model and the node's topics; returns the final statistics."""
        stats = self.live.close() if self.live is not None else None
        self.busy = self.live is not None and self.live.busy
        for timer in self._timers:
            self.node.destroy_timer(timer)
        for sub in self.subs.values():
            self.node.destroy_subscription(sub)
        for pub in self.pubs.values():
            self.node.destroy_publisher(pub)
        self.live, self.pubs, self.subs, self._timers = None, {}, {}, []
        self._waiting_said.clear()
        return stats

    # ------------------------------------------------------------------ topics
    def connect(self) -> None:
        """Subscribe each input whose topic has appeared, with the class its type needs."""
        graph = dict(self.node.get_topic_names_and_types())
        callbacks = {"rgb": self.live.on_color, "depth": self.live.on_depth, "camera_info": self.live.on_info}
        sensor = qos_profiles()[0]
        for role, topic in self.topics.items():
            if role in self.subs:
                continue
            if topic not in graph:
                if role not in self._waiting_said:
                    self._waiting_said.add(role)
                    self.log("info", f"waiting for {topic} ('{role}'; remap with -r {role}:=/your/topic)")
                continue
            kind = subscription_kind(role, topic, graph[topic])
            self.subs[role] = self.node.create_subscription(_msg_class(kind), topic, callbacks[role], sensor)
            self.log("info", f"'{role}': {topic} ({kind})")
        if len(self.subs) == len(self.topics) and self._timers and not self._timers[0].is_canceled():
            self._timers[0].cancel()

    def _publisher(self, key: str):
        if key not in self.pubs:
            _, out, latched = qos_profiles()
            cls = {CLASS_TOPIC: self.types.String, LABEL_TOPIC: self.types.LabelInfo,
                   "points": self.types.PointCloud2}.get(key, self.types.Image)
            self.pubs[key] = self.node.create_publisher(cls, key, latched if key in (CLASS_TOPIC, LABEL_TOPIC) else out)
        return self.pubs[key]

    def _publish(self, key: str, msg) -> None:
        pub = self.pubs.get(key)
        if pub is not None:
            pub.publish(msg)

    def _guard(self, fn):
        """A wrong topic type is a setup error: say it in one line and stop the node (exit 2)."""
        def run():
            try:
                fn()
            except ValueError as exc:
                self.log("error", str(exc))
                self.error = str(exc)
                self.node.context.try_shutdown()  # spin returns; main exits 2 (no exception through rclpy)
        return run

    # ------------------------------------------------------------------ /diagnostics
    def publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        if self.live is None:
            return
        stats = self.live.stats()
        need_info = "points" in self.settings.outputs and not self.settings.intrinsics
        level, reason = health(stats, self.settings.stall_after_s, need_info, self.live.warming)
        if not self.live.active:
            level, reason = 0, "inactive"
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.node.get_fully_qualified_name()}: segmentation",
                                  message=reason, hardware_id=str(self.live.segmenter.device),
                                  values=[KeyValue(key=k, value=v) for k, v in diagnostic_values(stats)])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    # ------------------------------------------------------------------ run-time parameters
    def _on_set_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult

        changes = {p.name: p.value for p in params}
        try:
            if self.settings is None:  # not configured (lifecycle): checked now, used at configure
                NodeSettings.from_params({**self.params, **{k: v for k, v in changes.items() if k in self.params}})
                return SetParametersResult(successful=True)
            new = changed_settings(self.settings, self.params, changes, lifecycle=self.lifecycle)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.params.update({k: v for k, v in changes.items() if k in self.params})
        for key in new.outputs:
            self._publisher(key)
        self.settings = new
        self.live.update(new)
        return SetParametersResult(successful=True)


def _declare(node, name: str, default):
    """A parameter's value; a value of the wrong type is one line naming the parameter."""
    try:
        return node.declare_parameter(name, default).value
    except Exception as exc:  # noqa: BLE001 - rclpy's InvalidParameterTypeException and kin
        raise ValueError(f"parameter '{name}': {exc} (its type is that of the default {default!r}: write "
                         f"1.0, not 1, for a float)") from None


def _msg_class(kind: str):
    if kind == "CameraInfo":
        from sensor_msgs.msg import CameraInfo

        return CameraInfo
    from sensor_msgs.msg import CompressedImage, Image

    return Image if kind == "Image" else CompressedImage


def _segmenter(settings: NodeSettings):
    from asymformer.deploy.segmenter import Segmenter

    return Segmenter(settings.checkpoint, device=settings.device, size=settings.size, precision=settings.precision)


def _view(settings: NodeSettings, seg):
    if not settings.rerun and not settings.rerun_save:
        return None
    from asymformer.outputs.rerun_view import RerunView

    return RerunView(seg.class_names, seg.colors, save=settings.rerun_save or None, spawn=settings.rerun)
