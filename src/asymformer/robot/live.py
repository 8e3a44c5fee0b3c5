"""Everything the live ROS 2 node decides, without ROS: pairing, decoding, the model's warm-up,
the streaming runtime, output messages, the count of every frame, and why nothing comes out.

`robot/node.py` is a thin rclpy shell around `LiveSegmentation`: it turns ROS parameters into
`NodeSettings` (robot/node_settings.py), asks `subscription_kind` which message class a topic
needs, forwards each message to `on_color` / `on_depth` / `on_info`, and publishes what
`publish(key, msg)` is given. Because this file never imports rclpy, it is tested directly with
rosbags' message classes.

Threads. The `on_*` callbacks run on the ROS executor thread and do only cheap work (count, pair
by stamp, keep the newest pair): a callback that blocks makes the depth-1 sensor subscriptions
lose frames without a trace. The intake thread decodes the newest pair (JPEG / PNG decoding and
copies are milliseconds a frame) and hands it to the `asymformer.stream.StreamRunner`, which keeps
the newest and drops the rest. The model is warmed up (its GIL-free trace built) on the intake
thread too: at start at the `size` parameter, at the first camera info's size, or at the first
pair's; a new frame size mid-stream likewise. Meanwhile pairs are dropped *and counted*
("warming up"), as every other colour frame that produces no output is (robot/counting.py).

Pairing (robot/pairing.StampPairer, shared with the bag tool) runs with no reorder allowance:
live messages arrive in stamp order, and every millisecond spent waiting is latency.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from asymformer.stream import StreamRunner

from .counting import FrameCounts
from .messages import (
    CONFIDENCE_OUTPUTS,
    camera_intrinsics,
    class_info_message,
    decode_color,
    decode_depth,
    label_info_message,
    needs_confidence,
    output_messages,
)
from .messages import stamp_ns as message_stamp
from .node_settings import (
    CLASS_TOPIC,
    INPUT_TOPICS,
    LABEL_TOPIC,
    NodeSettings,
    changed_settings,
    subscription_kind,
)
from .pairing import StampPairer

__all__ = ["CLASS_TOPIC", "INPUT_TOPICS", "LABEL_TOPIC", "LiveSegmentation", "NodeSettings", "changed_settings",
           "subscription_kind"]


@dataclass
class _Window:
    """Messages seen per input since the last stall report (for the reason of a stall)."""

    counts: dict = field(default_factory=lambda: {"color": 0, "depth": 0, "info": 0})
    since: float = field(default_factory=time.monotonic)


class LiveSegmentation:
    """Pair colour and depth messages, segment the newest pair, publish the outputs, count all.

    segmenter: a `Segmenter`; types: a `robot.messages.MessageTypes` (rclpy's in the node);
    publish(key, msg): key among settings.outputs and "class_info"; topics: the resolved input
    names, for messages; clock: nanoseconds in the stamps' time base (the node's ROS clock, so
    simulated time works); log(level, text): the node's logger; view: an optional
    `outputs.rerun_view.RerunView`; active: False for a lifecycle node until activated (colour
    frames are then counted as dropped "inactive" and nothing is published).
    """

    def __init__(self, segmenter, settings: NodeSettings, types, publish: Callable, *, topics=None,
                 clock: Callable[[], int] = time.time_ns, log: Callable[[str, str], None] | None = None, view=None,
                 active: bool = True):
        self.settings, self.types, self.publish, self.view = settings, types, publish, view
        self.topics = {**INPUT_TOPICS, **(topics or {})}
        self.log = log or (lambda level, text: None)
        self.segmenter, self.active = segmenter, active
        self.pairer = StampPairer(slop_s=settings.slop, reorder_s=0.0)
        self._pair_lock = threading.Lock()
        self.intrinsics = None
        if settings.intrinsics:
            from asymformer.outputs.points import Intrinsics

            self.intrinsics = Intrinsics.load(settings.intrinsics)
        self.counts = FrameCounts(clock)
        self._window = _Window()
        self._warned: set[str] = set()
        self.warm_up_s: float | None = None  # seconds spent warming the model up (all sizes), off the executor
        self.processed = 0
        self.published = dict.fromkeys((*settings.outputs, CLASS_TOPIC), 0)
        self._cv = threading.Condition()
        self._slot: deque = deque()  # the newest pair, not yet decoded
        self._warm_request: tuple[int, int] | None = None
        self._ready: set[tuple[int, int]] = set()  # sizes the model is warm for
        self._warming = False
        self._closed = False
        self.runner = StreamRunner(segmenter, queue_depth=settings.queue_depth, on_result=self._on_result,
                                   on_error=self._on_error, clock=clock, stall_after_s=settings.stall_after_s,
                                   on_warning=lambda text: self.log("warn", text), stall_hint=self.stall_hint,
                                   copy=False, depth_unit=1.0, confidence=self._needs_confidence(settings))
        self._intake = threading.Thread(target=self._intake_loop, name="asymformer-node-intake", daemon=True)

    def start(self) -> None:
        """Publish the class names and colours (latched by the node's QoS); start the intake
        thread and, with the `size` parameter, the model's warm-up at that size."""
        if self.settings.class_info:
            self._send(CLASS_TOPIC, class_info_message(self.segmenter.class_names, self.segmenter.colors, self.types))
            labels = label_info_message(self.segmenter.class_names, self.types.header(self.counts.clock(), ""),
                                        self.types)
            if labels is not None:  # vision_msgs available (a ROS 2 installation; no PyPI wheel)
                self._send(LABEL_TOPIC, labels)
        if self.settings.size:
            self._want_size(self.settings.size)
        self._intake.start()

    @property
    def warming(self) -> bool:
        """True until the model is warm for the frames' size (pairs are dropped meanwhile)."""
        with self._cv:
            return self._warming or not self._ready

    # ------------------------------------------------------------------ inputs (executor thread: cheap only)
    def on_color(self, msg) -> None:
        self._window.counts["color"] += 1
        self.counts.seen("color", message_stamp(msg))
        if not self.active:
            self.counts.drop("inactive")
            return
        period = self.counts.gaps.period_ns
        with self._pair_lock:
            self.pairer.min_gap_ns = None if period is None else period // 2
            pairs = self.pairer.add_color(message_stamp(msg), msg)
        self._offer(pairs)

    def on_depth(self, msg) -> None:
        self._window.counts["depth"] += 1
        self.counts.seen("depth")
        if not self.active:
            return
        with self._pair_lock:
            pairs = self.pairer.add_depth(message_stamp(msg), msg)
        self._offer(pairs)

    def on_info(self, msg) -> None:
        self._window.counts["info"] += 1
        self.counts.seen("info")
        if not self.settings.size and not self._ready and getattr(msg, "height", 0) and getattr(msg, "width", 0):
            self._want_size((int(msg.height), int(msg.width)))  # the first warm-up: before the first image
        if self.settings.intrinsics:
            return  # the parameter wins
        try:
            self.intrinsics = camera_intrinsics(msg)
        except ValueError as exc:
            self._once("info", "error", f"{self.topics['camera_info']}: {exc}")

    def _offer(self, pairs) -> None:
        """Keep the newest pair for the intake thread; count what it replaces."""
        if not pairs:
            return
        with self._cv:
            for pair in pairs:
                if self._warming:
                    self.counts.drop("warming up")
                    continue
                while len(self._slot) >= self.settings.queue_depth:  # keep-latest, as the runtime does
                    self._slot.popleft()
                    self.counts.drop("stale")
                self._slot.append(pair)
            self._cv.notify_all()

    # ------------------------------------------------------------------ intake thread: decode, warm up, submit
    def _ready_key(self, size) -> tuple[int, int]:
        return tuple(self.settings.size or size)  # with `size`, every frame is resized to it: one warm-up

    def _want_size(self, size) -> None:
        with self._cv:
            if self._closed or self._ready_key(size) in self._ready or self._warm_request or self._warming:
                return
            self._warm_request, self._warming = tuple(size), True
            self._cv.notify_all()

    def _intake_loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._slot and self._warm_request is None:
                    self._cv.wait()
                if self._closed:
                    return
                size, pair = self._warm_request, None
                if size is None:
                    pair = self._slot.popleft()
            if pair is None:
                self._warm_up(size, None)
                continue
            try:
                rgb, depth = decode_color(pair.color), decode_depth(pair.depth)
            except ValueError as exc:  # a bad frame: say it once per kind of problem, keep going
                self.counts.drop("bad frame")
                self._once(f"frame:{type(exc).__name__}:{str(exc)[:40]}", "error", f"frame dropped: {exc}")
                continue
            if self._ready_key(rgb.shape[:2]) not in self._ready:
                with self._cv:
                    self._warming = True
                self.counts.drop("warming up")
                self._warm_up(rgb.shape[:2], (rgb, depth))
                continue
            try:
                self.runner.submit(rgb, depth, pair.stamp_ns, meta={"header": pair.color.header,
                                                                     "intrinsics": self.intrinsics})
            except ValueError as exc:  # e.g. depth of another size than colour
                self.counts.drop("bad frame")
                self._once(f"frame:{type(exc).__name__}:{str(exc)[:40]}", "error", f"frame dropped: {exc}")
            except RuntimeError:
                if self.runner.closed:  # a message arriving while the node shuts down is ignored
                    return
                raise

    def _warm_up(self, size, frames) -> None:
        """Build the model's fast path for frames of `size` (real frames, or made-up ones at start)."""
        h, w = size
        if frames is None:
            rng = np.random.default_rng(0)
            frames = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.uniform(0.5, 4.0, (h, w)).astype(np.float32))
        self.log("info", f"warming up the model for {h}×{w} frames (pairs meanwhile are dropped and counted)")
        try:
            secs = self.runner.warm_up(*frames)  # also runs the runtime's stage threads once (StreamRunner.warm_up)
        except Exception as exc:  # noqa: BLE001 - the intake thread must live on: frames then fail one by one
            if self.runner.closed:
                return
            self._once(f"warm:{type(exc).__name__}", "error", f"warming up the model for {h}×{w} frames failed: "
                                                                f"{type(exc).__name__}: {exc}")
            secs = 0.0  # not stuck "warming up": the frames go to the model, each failure counted
        with self._cv:
            self._ready.add(self._ready_key(size))
            self._warm_request, self._warming = None, False
            self.warm_up_s = round((self.warm_up_s or 0.0) + secs, 3)
        self.log("info", f"model ready for {h}×{w} frames in {secs:.1f} s")

    # ------------------------------------------------------------------ run-time changes
    def set_active(self, active: bool) -> None:
        """Lifecycle activate / deactivate: inactive, colour frames are counted and dropped."""
        self.active = active
        if not active:
            with self._cv:
                self.counts.drop("inactive", len(self._slot))
                self._slot.clear()

    def update(self, settings: NodeSettings) -> None:
        """Apply the parameters that take effect while running (robot/node_settings.LIVE_PARAMETERS)."""
        with self._pair_lock:
            self.pairer.slop_ns = self.pairer.delay_ns = int(round(settings.slop * 1e9))
        self.runner.queue_depth = settings.queue_depth
        self.runner.confidence = self._needs_confidence(settings)  # before `settings`: a frame in post may read both
        self.runner.stall_after_s = settings.stall_after_s
        for key in settings.outputs:
            self.published.setdefault(key, 0)
        self.settings = settings

    def _needs_confidence(self, settings: NodeSettings) -> bool:
        """The confidence map costs about half the post-processing at 480×640: computed only when an
        output (confidence, points) or the Rerun view reads it."""
        return needs_confidence(settings.outputs, self.view is not None)

    # ------------------------------------------------------------------ outputs (worker thread)
    def _on_result(self, result) -> None:
        if not self.active:
            self.counts.drop("inactive")
            return
        settings = self.settings
        intr = result.meta["intrinsics"]
        outputs = settings.outputs
        if result.segmentation.confidence is None:  # post-processed before `outputs` changed to need it
            outputs = tuple(o for o in outputs if o not in CONFIDENCE_OUTPUTS)
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
                               class_colors=self.segmenter.colors, alpha=settings.alpha,
                               max_depth=settings.max_depth, confidence_encoding=settings.confidence_encoding)
        for key, msg in msgs.items():
            self._send(key, msg)
        self.processed += 1
        self.counts.output()
        if self.view is not None:
            self.view.log_result(result, intr, dropped=self.stats()["dropped_total"])

    def _send(self, key: str, msg) -> None:
        self.publish(key, msg)
        self.published[key] = self.published.get(key, 0) + 1

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
        if self._warming:
            return "the model is warming up for the frames' size (pairs meanwhile are dropped and counted)"
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
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        stats = self.runner.close(drain=False)
        if self._intake.is_alive() and self._intake is not threading.current_thread():
            self._intake.join(timeout=1.0)  # a warm-up in progress cannot be interrupted: see `busy`
        if self.view is not None:
            self.view.close()
        return self._with_node_stats(stats)

    @property
    def busy(self) -> bool:
        """After close: a warm-up still running on the intake thread (a process should then end
        with os._exit: torch running in a daemon thread at interpreter exit can abort)."""
        return self._intake.is_alive()

    def _with_node_stats(self, runner_stats: dict) -> dict:
        """The runtime's statistics with every colour frame accounted for: received = processed +
        dropped (by reason) + the few in flight (waiting for a partner, decoding, in the model)."""
        counts = self.counts.snapshot()
        pairing = self.pairer.stats()
        dropped = counts["dropped_by_reason"]
        dropped["stale"] += runner_stats["dropped"]
        dropped["failed"] += runner_stats["errors"]
        dropped["unpaired"] = pairing["unpaired_color"]
        total = sum(dropped.values())
        return {**runner_stats, **counts, "processed": self.processed, "runner_processed": runner_stats["processed"],
                "dropped": total, "dropped_total": total, "dropped_by_reason": dropped, "pairing": pairing,
                "published": dict(self.published), "warm_up_s": self.warm_up_s}
