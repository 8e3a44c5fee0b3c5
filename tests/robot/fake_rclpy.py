"""A small stand-in for the part of rclpy the node uses, written from rclpy's own source
(ros2/rclpy rclpy/node.py, qos.py, __init__.py, impl/rcutils_logger.py, time.py): the same
names, signatures and keyword-only arguments, so a misspelt call fails here as it would there.
Messages are rosbags' classes (ROS 2 Humble typestore) under the module names rclpy's generated
packages have (sensor_msgs.msg, std_msgs.msg, builtin_interfaces.msg).

What it does not model: DDS, QoS matching, executors and threads. `spin(node)` runs the test's
SCRIPT(node), which delivers messages and fires timers, then returns as a shut-down context would.
"""

from __future__ import annotations

import sys
import time
import types
from enum import IntEnum

import yaml

from .rosmsgs import TS2 as TS

STATE = {"args": [], "remaps": {}, "params": {}, "graph": {}, "script": None, "nodes": [], "shutdown": False}


# ---------------------------------------------------------------------------- rclpy.qos
class HistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2


class ReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


class InvalidQoSProfileException(Exception):
    pass


class QoSProfile:
    def __init__(self, history=None, depth=None, reliability=None, durability=None, lifespan=None, deadline=None,
                 liveliness=None, liveliness_lease_duration=None, avoid_ros_namespace_conventions=None):
        if history is None:
            if depth is None:
                raise InvalidQoSProfileException("History and/or depth settings are required.")
            history = HistoryPolicy.KEEP_LAST
        if history == HistoryPolicy.KEEP_LAST and depth is None:
            raise InvalidQoSProfileException("History set to KEEP_LAST without a depth setting.")
        self.history, self.depth = history, depth
        self.reliability = ReliabilityPolicy.RELIABLE if reliability is None else reliability
        self.durability = DurabilityPolicy.VOLATILE if durability is None else durability


qos_profile_sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                     reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


# ---------------------------------------------------------------------------- rclpy.node
class InvalidParameterTypeException(Exception):
    pass


class Parameter:
    def __init__(self, name, value=None):
        self.name, self._value = name, value

    @property
    def value(self):
        return self._value


class Time:
    def __init__(self, nanoseconds: int):
        self._ns = nanoseconds

    @property
    def nanoseconds(self) -> int:
        return self._ns


class Clock:
    def now(self) -> Time:
        return Time(time.time_ns())


class Logger:
    def __init__(self):
        self.records: list[tuple[str, str]] = []

    def debug(self, message, **kwargs):
        self.records.append(("debug", message))
        return True

    def info(self, message, **kwargs):
        self.records.append(("info", message))
        return True

    def warning(self, message, **kwargs):
        self.records.append(("warn", message))
        return True

    def warn(self, message, **kwargs):
        return self.warning(message, **kwargs)

    def error(self, message, **kwargs):
        self.records.append(("error", message))
        return True


class Publisher:
    def __init__(self, msg_type, topic, qos_profile):
        self.msg_type, self.topic, self.qos_profile, self.sent = msg_type, topic, qos_profile, []

    def publish(self, msg) -> None:
        assert isinstance(msg, self.msg_type), (type(msg), self.msg_type)
        self.sent.append(msg)


class Subscription:
    def __init__(self, msg_type, topic, callback, qos_profile):
        self.msg_type, self.topic, self.callback, self.qos_profile = msg_type, topic, callback, qos_profile

    def deliver(self, msg) -> None:
        """What the executor does when a message arrives: only messages of the subscribed type."""
        assert isinstance(msg, self.msg_type), f"{self.topic}: {type(msg).__name__} is not {self.msg_type.__name__}"
        self.callback(msg)


class Timer:
    def __init__(self, period, callback):
        self.timer_period_ns, self.callback, self.canceled = int(period * 1e9), callback, False

    def cancel(self) -> None:
        self.canceled = True

    def is_canceled(self) -> bool:
        return self.canceled

    def fire(self) -> None:
        if not self.canceled:
            self.callback()


def _same_type(a, b) -> bool:
    kinds = (bool, int, float, str, list)
    return next((k for k in kinds if isinstance(a, k)), None) is next((k for k in kinds if isinstance(b, k)), None)


class Node:
    def __init__(self, node_name, *, context=None, cli_args=None, namespace=None, use_global_arguments=True,
                 enable_rosout=True, start_parameter_services=True, parameter_overrides=None,
                 allow_undeclared_parameters=False, automatically_declare_parameters_from_overrides=False,
                 enable_logger_service=False):
        self._name, self._ns = node_name, namespace or "/"
        self._params: dict[str, Parameter] = {}
        self._logger, self._clock = Logger(), Clock()
        self.publishers: dict[str, Publisher] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.timers: list[Timer] = []
        self.destroyed = False
        STATE["nodes"].append(self)

    def get_name(self) -> str:
        return self._name

    def get_logger(self) -> Logger:
        return self._logger

    def get_clock(self) -> Clock:
        return self._clock

    def declare_parameter(self, name, value=None, descriptor=None, ignore_override=False) -> Parameter:
        override = STATE["params"].get(name)
        if override is not None and not ignore_override:
            if value is not None and not _same_type(override, value):
                raise InvalidParameterTypeException(f"Trying to set parameter '{name}' to '{override}' of type "
                                                    f"'{type(override).__name__}', expecting type "
                                                    f"'{type(value).__name__}'")
            value = override
        self._params[name] = Parameter(name, value)
        return self._params[name]

    def get_parameter(self, name) -> Parameter:
        return self._params[name]

    def resolve_topic_name(self, topic, *, only_expand=False) -> str:
        full = topic if topic.startswith("/") else self._ns.rstrip("/") + "/" + topic
        if only_expand:
            return full
        return STATE["remaps"].get(topic, STATE["remaps"].get(full, full))

    def create_publisher(self, msg_type, topic, qos_profile, *, callback_group=None, event_callbacks=None,
                         qos_overriding_options=None, publisher_class=None) -> Publisher:
        pub = Publisher(msg_type, self.resolve_topic_name(topic), qos_profile)
        self.publishers[pub.topic] = pub
        return pub

    def create_subscription(self, msg_type, topic, callback, qos_profile, *, callback_group=None,
                            event_callbacks=None, qos_overriding_options=None, raw=False) -> Subscription:
        sub = Subscription(msg_type, self.resolve_topic_name(topic), callback, qos_profile)
        self.subscriptions[sub.topic] = sub
        return sub

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None, autostart=True) -> Timer:
        timer = Timer(timer_period_sec, callback)
        self.timers.append(timer)
        return timer

    def get_topic_names_and_types(self, no_demangle=False) -> list[tuple[str, list[str]]]:
        return [(name, list(kinds)) for name, kinds in STATE["graph"].items()]

    def destroy_node(self) -> None:
        self.destroyed = True


# ---------------------------------------------------------------------------- rclpy
def init(*, args=None, context=None, domain_id=None, signal_handler_options=None):
    """Parses --ros-args -r FROM:=TO / -p NAME:=VALUE (YAML values, as rcl does)."""
    STATE["args"], STATE["shutdown"] = list(args or []), False
    argv = STATE["args"]
    ros = argv[argv.index("--ros-args") + 1:] if "--ros-args" in argv else []
    for flag, rule in zip(ros[::2], ros[1::2], strict=False):
        key, _, value = rule.partition(":=")
        if flag in ("-r", "--remap"):
            STATE["remaps"][key] = value
        elif flag in ("-p", "--param"):
            STATE["params"][key] = yaml.safe_load(value)


def spin(node, executor=None) -> None:
    STATE["script"](node)


def shutdown(*, context=None, uninstall_handlers=None) -> None:
    STATE["shutdown"] = True


def try_shutdown(*, context=None, uninstall_handlers=None) -> None:
    STATE["shutdown"] = True


def ok(*, context=None) -> bool:
    return not STATE["shutdown"]


def install(monkeypatch, graph: dict, script) -> dict:
    """Put the stand-in modules in sys.modules for one test; returns STATE."""
    STATE.update(args=[], remaps={}, params={}, graph=dict(graph), script=script, nodes=[], shutdown=False)
    rclpy = types.ModuleType("rclpy")
    rclpy.init, rclpy.spin, rclpy.shutdown, rclpy.try_shutdown, rclpy.ok = init, spin, shutdown, try_shutdown, ok
    node_mod = types.ModuleType("rclpy.node")
    node_mod.Node, node_mod.Parameter = Node, Parameter
    qos = types.ModuleType("rclpy.qos")
    for name in ("QoSProfile", "HistoryPolicy", "ReliabilityPolicy", "DurabilityPolicy", "qos_profile_sensor_data",
                 "InvalidQoSProfileException"):
        setattr(qos, name, globals()[name])
    qos.QoSHistoryPolicy, qos.QoSReliabilityPolicy, qos.QoSDurabilityPolicy = (HistoryPolicy, ReliabilityPolicy,
                                                                               DurabilityPolicy)
    rclpy.node, rclpy.qos = node_mod, qos
    mods = {"rclpy": rclpy, "rclpy.node": node_mod, "rclpy.qos": qos}
    for pkg, names in {"sensor_msgs": ("Image", "CompressedImage", "CameraInfo", "PointCloud2", "PointField"),
                       "std_msgs": ("Header", "String"), "builtin_interfaces": ("Time",)}.items():
        top, msg = types.ModuleType(pkg), types.ModuleType(f"{pkg}.msg")
        for name in names:
            setattr(msg, name, TS.types[f"{pkg}/msg/{name}"])
        top.msg = msg
        mods[pkg], mods[f"{pkg}.msg"] = top, msg
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return STATE
