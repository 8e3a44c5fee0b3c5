"""`predict --bag ... --realtime`: replay a recording at its recorded rate through the streaming
runtime, so a user sees what their machine and backend would do live.

Each paired frame is handed to a `asymformer.stream.StreamRunner` at the moment its colour stamp
says it was captured (relative to the first frame, times `1 / speed`); the runner keeps the
newest frame and drops what the model cannot keep up with, exactly as on the robot. Latency is
measured on a replay clock in the recording's own time base (stamp of the first frame + time
since the replay started), so "latency" means what it means live: from the frame's capture to
its result. Given a `frames.BagFrames`, each pair is decoded when it is due, as a node decodes a
message on arrival, so decoding is part of that latency (`decode_ms` in the report); plain
iterables of decoded frames are paced as they are. The output bag holds only the processed frames.

A recording's clock may jump (a clock resync, a paused recorder): a gap between two frames longer
than `max_gap_s` is not waited out but skipped at once, counted and reported (`gaps`); the replay
clock moves on as if the next frame came one frame period later. Every wait is on the caller's
stop event, so an interrupt ends the replay at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator

from asymformer.stream import StreamResult, StreamRunner

MIN_SPEED, MAX_SPEED = 0.01, 100.0
DEFAULT_MAX_GAP_S = 5.0  # longer than any camera's frame period, short enough not to look like a hang
MAX_GAPS_NAMED = 20


class RealtimeReplay:
    """Turn a stream of `frames.Frame` into the `StreamResult`s a live run would have produced.

    speed: replay rate (1.0 = as recorded, 2.0 = twice as fast: a stress test);
    queue_depth: the runtime's (1 = keep only the newest frame, as the live node does);
    max_gap_s: a stamp gap longer than this (in recording time) is skipped, not waited out;
    confidence: compute the confidence map (False: labels only, as `StreamRunner(confidence=)`).
    """

    def __init__(self, segmenter, speed: float = 1.0, queue_depth: int = 1, max_gap_s: float = DEFAULT_MAX_GAP_S,
                 confidence: bool = True):
        if not MIN_SPEED <= speed <= MAX_SPEED:  # 1e-9 waited for years, inf died in int(inf)
            raise ValueError(f"--realtime-speed must be between {MIN_SPEED} and {MAX_SPEED} (1.0 = as recorded, "
                             f"2 = twice as fast), got {speed}")
        if not 0 < max_gap_s <= 3600:
            raise ValueError(f"--max-gap must be between 0 and 3600 seconds of recording time, got {max_gap_s}")
        self.segmenter, self.speed, self.queue_depth = segmenter, float(speed), queue_depth
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.confidence = confidence
        self.gaps: list[dict] = []  # stamp jumps skipped: where and how long
        self.gaps_skipped = 0
        self.due_in_s: float | None = None  # while the replay waits for its next frame
        self.late = 0  # frames submitted after their time (decoding slower than the recording)
        self.warm_up_s = 0.0  # the first frame through the model before the replay clock starts
        self.frames = 0
        self.seconds = 0.0
        self._stats: dict = {}
        self._decode_ms: deque[float] = deque(maxlen=1024)

    def results(self, frames: Iterable, stop: threading.Event | None = None) -> Iterator[StreamResult]:
        """Pace `frames`, submit them, yield results as they become available (in order). Waits end
        early when `stop` is set (an interrupt, another stage's error): the replay then ends."""
        origin: dict = {}
        stop = stop if stop is not None else threading.Event()
        period = {"ns": None, "last": None}

        def clock() -> int:  # nanoseconds in the recording's time base
            if not origin:
                return 0
            return origin["stamp"] + int((time.monotonic_ns() - origin["wall"]) * self.speed)

        runner = StreamRunner(self.segmenter, queue_depth=self.queue_depth, clock=clock, copy=False,
                              depth_unit=1.0, result_depth=1024, stall_hint=self._stall_hint,
                              confidence=self.confidence)
        t0 = time.perf_counter()
        lazy = hasattr(frames, "pairs") and hasattr(frames, "decode")
        try:
            for index, item in enumerate(frames.pairs() if lazy else frames):
                if stop.is_set():
                    break
                if origin:
                    self._skip_gap(item.stamp_ns, origin, period)
                    wait = (item.stamp_ns - clock()) / 1e9 / self.speed
                    if wait > 0:
                        self.due_in_s = wait
                        if stop.wait(wait):
                            break
                        self.due_in_s = None
                    elif wait < -0.005:
                        self.late += 1
                period["last"] = item.stamp_ns
                frame = self._decode(frames, item, index) if lazy else item
                if frame is None:  # undecodable: skipped and counted by the reader
                    continue
                if not origin:  # the first decodable frame warms the model up, then the replay clock starts
                    self.warm_up_s = round(runner.warm_up(frame.rgb, frame.depth_m), 3)
                    origin.update(stamp=item.stamp_ns, wall=time.monotonic_ns())
                runner.submit(frame.rgb, frame.depth_m, frame.stamp_ns, meta=frame)
                self.frames += 1
                yield from self._ready(runner)
            if stop.is_set():  # interrupted: the frames in flight are not waited for
                return
            runner.close(drain=True)
            yield from runner
        finally:
            self._stats = runner.close(drain=False)  # a no-op after the drain; stops it on errors
            self.seconds = time.perf_counter() - t0

    def _skip_gap(self, stamp_ns: int, origin: dict, period: dict) -> None:
        """A jump of more than max_gap in the stamps: move the replay clock so the frame is due one
        frame period after the last one, and note the gap (not waited out, never a hang)."""
        last = period["last"]
        if last is None:
            return
        gap = stamp_ns - last
        if abs(gap) <= self.max_gap_ns:  # a clock resync may jump back as well as forward
            if gap > 0:
                period["ns"] = gap if period["ns"] is None else min(period["ns"], gap)
            return
        step = period["ns"] or 0
        origin["stamp"] += gap - step
        self.gaps_skipped += 1
        if len(self.gaps) < MAX_GAPS_NAMED:
            self.gaps.append({"after_stamp_ns": int(last), "gap_s": round(gap / 1e9, 3)})

    def _stall_hint(self) -> str | None:
        """For the runtime's stall warning: a replay has no camera; say what it waits for."""
        due = self.due_in_s
        if due is not None:
            return f"the replay is waiting {due:.1f} s for the recording's next frame (a gap in its stamps)"
        return "replaying a recording: frames come as fast as they can be read and decoded"

    def _decode(self, frames, pair, index: int):
        t = time.perf_counter()
        frame = frames.decode(pair, index)
        self._decode_ms.append(1000 * (time.perf_counter() - t))
        return frame

    @staticmethod
    def _ready(runner: StreamRunner) -> Iterator[StreamResult]:
        while (r := runner.get(timeout=0)) is not None:
            yield r

    def report(self) -> dict:
        """What --report adds: processed, dropped, latency p50/p99 (and the rest of the runtime's
        statistics under "realtime")."""
        s = self._stats
        model = s.get("model_ms")
        return {"processed": s.get("processed", 0), "dropped": s.get("dropped", 0),
                "model_ms": model, "model_fps": round(1000 / model, 3) if model else None,
                "latency_p50_ms": s.get("latency_p50_ms"), "latency_p99_ms": s.get("latency_p99_ms"),
                "realtime": {"speed": self.speed, "queue_depth": self.queue_depth, "submitted": self.frames,
                             "late_submits": self.late, "warm_up_s": self.warm_up_s,
                             "max_gap_s": self.max_gap_ns / 1e9, "gaps_skipped": self.gaps_skipped,
                             "gaps": list(self.gaps),
                             "replay_seconds": round(self.seconds, 3),
                             "decode_ms": round(sum(self._decode_ms) / len(self._decode_ms), 3) if self._decode_ms
                             else None,
                             "latency_note": "capture stamp -> result on the replay clock (decoding on arrival "
                                             "included when reading a recording)",
                             **{k: v for k, v in s.items() if k not in ("submitted", "queue_depth")}}}
