"""The ROS 2 node: `python -m asymformer.robot.node --ros-args -p checkpoint:=model.safetensors
-r rgb:=/camera/camera/color/image_raw -r depth:=/camera/camera/aligned_depth_to_color/image_raw
-r camera_info:=/camera/camera/color/camera_info`.

A thin rclpy shell; every decision lives in `robot/live.py` (tested without ROS). rclpy comes
with a ROS 2 installation, not from PyPI, so it is imported only when the node starts; without
it the command prints one line saying to source the ROS 2 setup.

Inputs (relative names, remappable): `rgb` (Image or CompressedImage), `depth` (Image 16UC1 /
32FC1, or CompressedImage compressedDepth), `camera_info` (CameraInfo). The message class of
each image topic is read from the graph once the topic appears, so `image_raw`,
`image_raw/compressed` and `image_raw/compressedDepth` all work without a setting. Outputs:
`labels`, `confidence`, `overlay`, `points` (each switchable with the `outputs` parameter) and
`class_info` (latched JSON with names and colours), all with the colour frame's header.
Subscriptions use the sensor-data QoS with depth 1 (best effort: compatible with reliable and
best-effort cameras); publishers are reliable with depth 1 (rviz's default subscriptions match).
"""

from __future__ import annotations

import sys

from .live import CLASS_TOPIC, INPUT_TOPICS, LiveSegmentation, NodeSettings, subscription_kind

NODE_NAME = "asymformer"
NO_ROS = ("asymformer node: rclpy is not importable; source your ROS 2 setup first "
          "(e.g. source /opt/ros/jazzy/setup.bash) and run again")


def _import_rclpy():
    try:
        import rclpy
        import rclpy.node
        import rclpy.qos
    except ImportError:
        return None
    return rclpy


def qos_profiles(rclpy):
    """(inputs, outputs, latched): sensor data at depth 1; reliable depth 1; reliable transient-local."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
    out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return sensor, out, latched


def make_node(rclpy, segmenter_factory=None, view_factory=None):
    """Build the node (rclpy initialised by the caller). segmenter_factory(settings) defaults to
    a `Segmenter` from the parameters; view_factory(settings, segmenter) to a RerunView when
    asked (tests pass stand-ins)."""
    from asymformer.robot.messages import MessageTypes

    node = rclpy.node.Node(NODE_NAME)
    try:
        params = {name: _declare(node, name, value) for name, value in NodeSettings.DEFAULTS.items()}
        settings = NodeSettings.from_params(params)
        seg = (segmenter_factory or _segmenter)(settings)
        view = (view_factory or _view)(settings, seg)
    except BaseException:
        node.destroy_node()
        raise
    sensor, out_qos, latched = qos_profiles(rclpy)
    topics = {role: node.resolve_topic_name(name) for role, name in INPUT_TOPICS.items()}
    types = MessageTypes.from_rclpy()
    pubs = {key: node.create_publisher(types.Image if key != "points" else types.PointCloud2, key, out_qos)
            for key in settings.outputs}
    if settings.class_info:
        pubs[CLASS_TOPIC] = node.create_publisher(types.String, CLASS_TOPIC, latched)
    logger = node.get_logger()

    warning = getattr(logger, "warning", None) or logger.warn  # older rclpy: warn only

    def log(level: str, text: str) -> None:
        {"info": logger.info, "warn": warning, "error": logger.error}[level](text)

    live = LiveSegmentation(seg, settings, types, lambda key, msg: pubs[key].publish(msg), topics=topics,
                            clock=lambda: node.get_clock().now().nanoseconds, log=log, view=view)
    node.asymformer = live
    node.asymformer_subscriptions = {}
    callbacks = {"rgb": live.on_color, "depth": live.on_depth, "camera_info": live.on_info}
    waiting_said = set()

    def connect() -> None:
        """Subscribe each input whose topic has appeared, with the class its type needs."""
        graph = dict(node.get_topic_names_and_types())
        for role, topic in topics.items():
            if role in node.asymformer_subscriptions:
                continue
            if topic not in graph:
                if role not in waiting_said:
                    waiting_said.add(role)
                    log("info", f"waiting for {topic} ('{role}'; remap with -r {role}:=/your/topic)")
                continue
            kind = subscription_kind(role, topic, graph[topic])
            node.asymformer_subscriptions[role] = node.create_subscription(
                _msg_class(kind), topic, callbacks[role], sensor)
            log("info", f"'{role}': {topic} ({kind})")
        if len(node.asymformer_subscriptions) == len(topics):
            timer.cancel()

    timer = node.create_timer(1.0, _guard(connect, node, log))
    node.asymformer_connect = _guard(connect, node, log)  # main() calls it once before spinning
    live.start()
    log("info", f"segmenting with {seg!r}; outputs: {', '.join(settings.outputs) or 'none'}")
    return node


def _declare(node, name: str, default):
    """A parameter's value; a value of the wrong type is one line naming the parameter."""
    try:
        return node.declare_parameter(name, default).value
    except Exception as exc:  # noqa: BLE001 - rclpy's InvalidParameterTypeException and kin
        raise ValueError(f"parameter '{name}': {exc} (its type is that of the default {default!r}: write "
                         f"1.0, not 1, for a float)") from None


def _guard(fn, node, log):
    """A wrong topic type is a setup error: say it in one line and stop the node."""
    def run():
        try:
            fn()
        except ValueError as exc:
            log("error", str(exc))
            node.asymformer_error = str(exc)
            raise SystemExit(2) from None
    return run


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
    from asymformer.deploy.rerun_view import RerunView

    return RerunView(seg.class_names, seg.colors, save=settings.rerun_save or None, spawn=settings.rerun)


def main(argv=None) -> int:
    rclpy = _import_rclpy()
    if rclpy is None:
        print(NO_ROS, file=sys.stderr)
        return 2
    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        node = make_node(rclpy)
        node.asymformer_connect()
        rclpy.spin(node)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"asymformer node: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            live = getattr(node, "asymformer", None)
            if live is not None:
                stats = live.close()
                print(f"asymformer node: processed {stats['processed']}, dropped {stats['dropped']}, latency p50 "
                      f"{stats['latency_p50_ms']} ms, p99 {stats['latency_p99_ms']} ms", file=sys.stderr)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
