"""`StreamRunner`: a latency-bounded streaming runtime around a `Segmenter` (any backend).

On a robot the question is how old the newest label map is when the planner reads it. A
synchronous loop answers badly: a slow frame delays every later one, and a queue of ten frames
makes every answer ten frames stale. Here producers hand in (rgb, depth, stamp) without ever
blocking; a bounded keep-latest queue drops the oldest waiting frame when a newer one arrives
(depth 1 by default), and three stage threads overlap pre-processing of the next frame and
post-processing of the last one with inference of the current one (the Segmenter's own
`preprocess` / `infer` / `postprocess`). The next frame is pre-processed "just in time", when
the model is about to finish, so it is the newest one the camera gave and not one that waited a
whole inference (and an idle model holds out briefly for the camera's next frame when that pays:
`Stages.hold_for_fresher`). Memory is bounded whatever the input rate: at most `queue_depth` waiting
frames, one per stage, `result_depth` unread results and fixed-size statistics windows.

Latency is measured from the frame's source stamp to the moment its result is available, on
`clock` (default `time.time_ns`, the clock ROS header stamps and most drivers use); pass a clock
in the stamps' own time base when replaying a recording. Stage details: stages.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from asymformer.deploy.segmenter import Segmentation

from .frame import Frame, WarmUp, check_frame, cuda_event
from .stages import Stages, WindowStats, stall_reason

log = logging.getLogger("asymformer.stream")


@dataclass
class StreamResult:
    """One processed frame: the segmentation with its source stamp, the frame it came from
    (for overlays and point clouds), the caller's `meta`, and how long it took."""

    stamp_ns: int
    segmentation: Segmentation
    rgb: Any
    depth: Any
    meta: Any = None
    index: int = 0  # submission index (0-based): gaps are dropped frames
    latency_ms: float = 0.0  # source stamp -> result available, on the runner's clock
    model_ms: float = 0.0
    frame_size: tuple[int, int] = field(default=(0, 0))

    @property
    def labels(self):
        return self.segmentation.labels

    @property
    def confidence(self):
        return self.segmentation.confidence


class StreamRunner:
    """Run a `Segmenter` on a live stream: `submit()` never blocks, results come back through
    `on_result(result)` (called on the worker's post-processing thread: keep it short) and/or
    iteration (`for r in runner`, `get(timeout)`, `latest()`), each with its source stamp.

    queue_depth: frames kept waiting (the newest ones; older ones are dropped and counted).
    on_error(exc): called with a worker exception (its notes name the stage and stamp); the
    frame is counted in `errors` and the stream goes on. Without it the first exception stops
    the runner and is raised again by the next `submit` / `get` / iteration / `close`.
    result_depth: unread results kept for iteration (default 8, or 0 when `on_result` is given).
    stall_after_s: with no result for this long, one warning saying why (`on_warning(text)`,
    default the "asymformer.stream" logger); `stall_hint()` may add a reason (e.g. the ROS
    node: "colour arrives but no depth"). copy: copy submitted arrays (drivers reuse buffers).
    confidence: compute the confidence map (False: labels only, `result.confidence` None, about half
    the post-processing time at 480×640; the ROS node turns it off unless an output needs it). An
    attribute too, read per frame, so it can change while the stream runs.
    gil_free: run the model without holding Python's GIL (`Segmenter.infer(gil_free=True)`: on a
    CPU an eager model is traced per frame size, about 1-2 s on the first frame of each), so the
    producer, callbacks and any other Python thread do not slow inference down.
    """

    result_type = StreamResult

    def __init__(self, segmenter, queue_depth: int = 1, on_result: Callable | None = None,
                 on_error: Callable | None = None, *, result_depth: int | None = None,
                 clock: Callable[[], int] = time.time_ns, stall_after_s: float = 5.0,
                 on_warning: Callable[[str], None] | None = None, stall_hint: Callable[[], str | None] | None = None,
                 copy: bool = True, depth_unit: float | None = None, window: int = 1024, gil_free: bool = True,
                 confidence: bool = True):
        if not isinstance(queue_depth, int) or queue_depth < 1:
            raise ValueError(f"StreamRunner: queue_depth must be an integer >= 1, got {queue_depth!r}")
        if result_depth is None:
            result_depth = 0 if on_result is not None else 8
        if result_depth < 0:
            raise ValueError(f"StreamRunner: result_depth must be >= 0, got {result_depth}")
        if not stall_after_s > 0:
            raise ValueError(f"StreamRunner: stall_after_s must be > 0 seconds, got {stall_after_s}")
        for name in ("preprocess", "infer", "postprocess"):
            if not callable(getattr(segmenter, name, None)):
                raise ValueError(f"StreamRunner: {type(segmenter).__name__} has no {name}() method; pass an "
                                 "asymformer.Segmenter")
        self.segmenter, self.queue_depth = segmenter, queue_depth
        self.on_result, self.on_error, self.clock = on_result, on_error, clock
        self.stall_after_s, self.stall_hint, self.copy = float(stall_after_s), stall_hint, copy
        self.confidence = bool(confidence)
        self._warn_fn = on_warning or log.warning
        self._cv = threading.Condition()
        self._inbox: deque[Frame] = deque()
        self._results: deque[StreamResult] = deque(maxlen=result_depth) if result_depth else deque(maxlen=1)
        self._keep_results = result_depth > 0
        self._stats = WindowStats(window)
        self._closing = self._aborted = self._error_raised = False
        self._error: BaseException | None = None
        self._submitted = self._size_changes = 0
        self._last_size: tuple[int, int] | None = None
        self._start = time.monotonic()
        self._last_submit = self._last_result = None
        self._submit_gap: float | None = None  # running mean seconds between submits
        self._stall_warned = False
        self._warming_up = False  # warm_up() is running: no stall warnings meanwhile
        self._warm_up_frames = 0  # frames warm_up() ran through the stage threads
        self._stages = Stages(self, segmenter, depth_unit, gil_free)
        self._threads = [threading.Thread(target=fn, name=f"asymformer-stream-{name}", daemon=True)
                         for name, fn in (("pre", self._stages.pre_loop), ("model", self._stages.model_loop),
                                          ("post", self._stages.post_loop), ("watchdog", self._watch_loop))]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ producer side
    def submit(self, rgb, depth, stamp_ns: int, meta=None) -> bool:
        """Hand in one frame (never blocks). True when it took a free place in the queue, False
        when the oldest waiting frame was dropped to make room for it (keep-latest)."""
        rgb, depth, size = check_frame(rgb, depth, self.copy)
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)) or stamp_ns < 0:
            raise ValueError(f"StreamRunner.submit: stamp_ns must be a non-negative integer (nanoseconds on the "
                             f"runner's clock), got {stamp_ns!r}")
        now = time.monotonic()
        with self._cv:
            self._raise_pending("submit")
            if self._closing:
                raise RuntimeError("StreamRunner.submit: the runner is closed; create a new one")
            if self._last_size is not None and size != self._last_size:
                self._size_changes += 1
                if self._size_changes <= 5:
                    self._warn(f"frame size changed from {self._last_size[0]}×{self._last_size[1]} to "
                               f"{size[0]}×{size[1]} at stamp {int(stamp_ns)}; frames are segmented at their own "
                               f"size (the first at a new size can be slow where a backend is built per size)")
            self._last_size = size
            frame = Frame(self._submitted, int(stamp_ns), rgb, depth, meta, size, now, event=cuda_event(rgb, depth))
            self._submitted += 1
            if self._last_submit is not None:  # the camera's period, for holding out for a fresher frame
                gap = now - self._last_submit
                self._submit_gap = gap if self._submit_gap is None else 0.8 * self._submit_gap + 0.2 * gap
            self._last_submit = now
            free = self._queued_locked() < self.queue_depth  # warm_up's hidden frame takes no place
            if not free:
                oldest = next(f for f in self._inbox if f.warm is None)
                self._inbox.remove(oldest)
                self._discard_locked(oldest)
            self._inbox.append(frame)
            self._cv.notify_all()
        return free

    def warm_up(self, rgb, depth, runs: int = 3) -> float:
        """Make the stream fast and steady from its first live frame; returns the seconds it took.
        Nothing is delivered or counted. Call it before submitting frames (and again for a new frame
        size, as the ROS node does).

        Two parts, because each costs seconds or memory the first live frames would otherwise pay:
        1. the frame through the three stages `runs` times in the caller's thread: the first frames
           of a size build what the model needs (a GIL-free trace, kernels, a backend for that size);
        2. the same frame once through the runner's own stage threads: each thread's first frame
           builds its allocator arena, OpenMP team and buffers (about 110 MB at 480×640 for
           asymformer_b0_a), which otherwise arrive with the first live frames as latency, and as
           memory growth that looks like a leak (benchmarks/RESULTS.md, issue 27). It also seeds the
           stage timings that choose when to prepare the next frame.
        The hidden frame never displaces a live one: a live frame prepared before it is kept and the
        hidden one dropped (which ends the wait). Called from on_result / on_error (a stage thread),
        only part 1 runs."""
        with self._cv:
            self._raise_pending("warm_up")
            if self._closing:
                raise RuntimeError("StreamRunner.warm_up: the runner is closed; create a new one")
            self._warming_up = True
        try:
            rgb, depth, size = check_frame(rgb, depth, copy=False)
            t0 = time.monotonic()
            with torch.inference_mode():
                for _ in range(max(1, runs)):
                    r, d, frame_hw, is_tensor = self.segmenter.preprocess(rgb, depth, self._stages.depth_unit)
                    self._stages.postprocess(self._stages.infer(r, d), frame_hw, is_tensor)
            if threading.current_thread() not in self._threads:  # from on_result / on_error: that thread is busy
                self._through_stage_threads(rgb, depth, size)
            return time.monotonic() - t0
        finally:
            with self._cv:
                self._warming_up = False
                if self._last_result is None:  # the stall watchdog counts from here, not from __init__
                    self._start = time.monotonic()

    def _through_stage_threads(self, rgb, depth, size) -> None:
        """warm_up's part 2: one hidden frame (index -1: any live frame is newer) through the
        stage threads, waiting until it is done, replaced or failed."""
        warm = WarmUp()
        with self._cv:
            if self._closing:
                raise RuntimeError("StreamRunner.warm_up: the runner was closed during the warm-up")
            self._inbox.appendleft(Frame(-1, int(self.clock()), rgb, depth, None, size, time.monotonic(),
                                         event=cuda_event(rgb, depth), warm=warm))  # before any live frame
            self._cv.notify_all()
        while not warm.done.wait(0.1):
            if self._aborted or (self._closing and self._stages.done["post"]):
                raise RuntimeError("StreamRunner.warm_up: the runner was closed during the warm-up")
        if warm.error is not None:
            raise warm.error
        with self._cv:
            if self._aborted:
                raise RuntimeError("StreamRunner.warm_up: the runner was closed during the warm-up")
            self._warm_up_frames += warm.ran  # not when a live frame replaced it

    # ------------------------------------------------------------------ consumer side
    def get(self, timeout: float | None = None) -> StreamResult | None:
        """The oldest unread result, waiting up to `timeout` s (None: until one comes or the
        runner closes); None on timeout or when closed with nothing left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                self._raise_pending("get")
                if self._results:
                    return self._results.popleft()
                if self._finished():
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cv.wait(left)

    def latest(self) -> StreamResult | None:
        """The newest unread result without waiting (older unread ones are discarded), or None:
        what a planner polling at its own rate wants."""
        with self._cv:
            self._raise_pending("latest")
            if not self._results:
                return None
            newest = self._results.pop()
            self._results.clear()
            return newest

    def __iter__(self) -> Iterator[StreamResult]:
        while (result := self.get()) is not None:
            yield result

    @property
    def queued(self) -> int:
        """Frames waiting for the worker now (cheap: a producer may poll it)."""
        with self._cv:  # counting walks the inbox, which the stage threads change
            return self._queued_locked()

    @property
    def processed(self) -> int:
        """Results delivered so far (cheap, unlike `stats()`)."""
        return self._stats.processed

    def reset_stats(self) -> None:
        """Forget the timing windows (latency, stage times, frames/s), e.g. after a warm-up whose
        first inferences build kernels; the counters keep counting."""
        with self._cv:
            self._stats.reset_windows()

    def stats(self) -> dict:
        """Counters and the recent window's latency (source stamp -> result; p50 / p99 / max),
        pipeline time (submit -> result), stage times and frames/s; None where nothing was measured."""
        with self._cv:
            out = {"submitted": self._submitted, "queued": self._queued_locked(), "size_changes": self._size_changes,
                   "queue_depth": self.queue_depth, "warm_up_frames": self._warm_up_frames}
            out.update(self._stats.summary())
            out["failed"] = self._error is not None
            return out

    # ------------------------------------------------------------------ shutdown
    def close(self, drain: bool = True, timeout: float | None = 30.0) -> dict:
        """Stop: with `drain`, frames already handed in are processed first; without it they are
        dropped and a frame in the model is finished but its result discarded (an inference
        cannot be interrupted). Waits up to `timeout` s for the threads; returns `stats()`.
        A worker exception not yet reported is raised here (once reported, close is quiet)."""
        with self._cv:
            self._closing = True
            if not drain and not self._aborted:
                self._abort_locked()
            self._cv.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread():  # close() from on_result: the others still stop
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self._threads if t.is_alive() and t is not threading.current_thread()]
        if busy:
            self._warn(f"StreamRunner.close: {', '.join(busy)} still busy after {timeout} s (an inference or "
                       f"callback that does not return); left running as daemon threads")
        with self._cv:
            if not self._error_raised:  # once reported, closing is quiet cleanup
                self._raise_pending("close")
            return self.stats()

    def __enter__(self) -> StreamRunner:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # already failing: stop quickly, do not hide that exception behind a worker's
            try:
                self.close(drain=False)
            except Exception:  # noqa: BLE001 - the caller's exception is the one to see
                pass

    @property
    def closed(self) -> bool:
        return self._closing

    # ------------------------------------------------------------------ used by the stages (lock held)
    def _finished(self) -> bool:
        return self._closing and self._stages.done["post"] and not self._results

    def _abort_locked(self) -> None:
        """Drop everything waiting and make the stages stop at their next check."""
        self._aborted = True
        while self._inbox:
            self._discard_locked(self._inbox.popleft())
        self._stages.drop_slots()
        self._cv.notify_all()

    def _queued_locked(self) -> int:
        return sum(f.warm is None for f in self._inbox)

    def _discard_locked(self, frame: Frame) -> None:
        """A frame leaves the pipeline unprocessed: counted as dropped, except warm_up's hidden
        frame, which is not a frame of the stream (its wait just ends)."""
        if frame.warm is not None:
            frame.warm.done.set()
        else:
            self._stats.dropped += 1

    def _deliver_locked(self, result: StreamResult, submitted_at: float, stage_ms: dict) -> None:
        now = time.monotonic()
        self._stats.add_result(now, result.latency_ms, 1000 * (now - submitted_at), stage_ms)
        self._last_result, self._stall_warned = now, False
        if self._keep_results:
            self._results.append(result)
        self._cv.notify_all()

    def _fail(self, frame: Frame, stage: str, exc: BaseException) -> None:
        """A stage raised: hand it to on_error (and go on), or stop and keep it for the caller."""
        if frame.warm is not None:  # warm_up's frame: raised to warm_up's caller, not counted
            exc.add_note(f"asymformer StreamRunner: raised in the {stage} stage on the warm-up frame")
            frame.warm.error = exc
            frame.warm.done.set()
            return
        exc.add_note(f"asymformer StreamRunner: raised in the {stage} stage on the frame with stamp "
                     f"{frame.stamp_ns} (index {frame.index})")
        with self._cv:
            self._stats.errors += 1
        if self.on_error is not None:
            try:
                self.on_error(exc)
                return
            except BaseException as again:  # noqa: BLE001 - a broken handler must not kill the thread silently
                exc = again
        with self._cv:
            if self._error is None:
                self._error = exc
            self._closing = True
            self._abort_locked()

    def _raise_pending(self, where: str) -> None:
        if self._error is None:
            return
        if not self._error_raised:
            self._error_raised = True
            raise self._error
        raise RuntimeError(f"StreamRunner.{where}: the runner stopped after a worker error "
                           f"({type(self._error).__name__}: {self._error}), raised earlier")

    def _warn(self, text: str) -> None:
        try:
            self._warn_fn(text)
        except Exception:  # noqa: BLE001 - a warning hook must never stop the stream
            log.exception("StreamRunner: on_warning raised")

    # ------------------------------------------------------------------ watchdog
    def _watch_loop(self) -> None:
        """Says once per stall why no result has come for `stall_after_s` seconds."""
        tick = min(0.5, self.stall_after_s / 4)
        with self._cv:
            while not (self._closing and (self._aborted or self._stages.done["post"])):
                self._cv.wait(tick)
                now = time.monotonic()
                quiet = now - (self._last_result or self._start)
                if quiet < self.stall_after_s or self._stall_warned or self._closing or self._warming_up:
                    continue
                self._stall_warned = True
                hint = None
                if self.stall_hint is not None:
                    try:
                        hint = self.stall_hint()
                    except Exception as exc:  # noqa: BLE001
                        hint = f"(stall_hint raised {type(exc).__name__}: {exc})"
                since = "since the start" if self._last_result is None else "since the last one"
                reason = stall_reason(now, self._start, self._submitted, self._last_submit,
                                      self._stages.busy_since, hint)
                self._warn(f"no segmentation result for {quiet:.1f} s ({since}): {reason}")
