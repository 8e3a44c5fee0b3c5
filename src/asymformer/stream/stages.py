"""The three stage threads of `StreamRunner` (pre-process -> model -> post-process), its
statistics window and its stall diagnosis.

Each stage hands a frame to the next through a one-place slot under the runner's condition
variable, so at most one frame sits between two stages (bounded memory) and a slow stage makes
the earlier ones wait instead of queueing. On CUDA each stage issues its work on its own stream
and waits for it before the hand-off, so the upload of frame n+1 and the download of frame n-1
overlap the kernels of frame n; a tensor is released only after the stage that used it synced.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections import deque

import numpy as np
import torch

from .frame import Frame


class WindowStats:
    """Counters plus the last `window` results' timings (fixed memory however long the run)."""

    def __init__(self, window: int):
        self.processed = self.dropped = self.errors = 0
        self.window = window
        self.reset_windows()

    def reset_windows(self) -> None:
        window = self.window
        self.latency = deque(maxlen=window)
        self.overhead = deque(maxlen=window)  # latency minus that frame's own model time
        self.pipeline = deque(maxlen=window)
        self.stage = {k: deque(maxlen=window) for k in ("pre_ms", "model_ms", "post_ms")}
        self.times = deque(maxlen=window)

    def add_result(self, now: float, latency_ms: float, pipeline_ms: float, stage_ms: dict) -> None:
        self.processed += 1
        self.latency.append(latency_ms)
        self.overhead.append(latency_ms - stage_ms.get("model_ms", 0.0))
        self.pipeline.append(pipeline_ms)
        self.times.append(now)
        for k, v in stage_ms.items():
            self.stage[k].append(v)

    def summary(self) -> dict:
        def pct(values, q):
            return round(float(np.percentile(np.asarray(values), q, method="higher")), 3) if values else None

        out = {"processed": self.processed, "dropped": self.dropped, "errors": self.errors,
               "latency_p50_ms": pct(self.latency, 50), "latency_p99_ms": pct(self.latency, 99),
               "latency_max_ms": round(max(self.latency), 3) if self.latency else None,
               "overhead_p50_ms": pct(self.overhead, 50), "overhead_p99_ms": pct(self.overhead, 99),
               "pipeline_p50_ms": pct(self.pipeline, 50), "pipeline_p99_ms": pct(self.pipeline, 99)}
        for k, v in self.stage.items():
            out[k] = round(float(np.mean(v)), 3) if v else None
        out["model_p99_ms"] = pct(self.stage["model_ms"], 99)  # the model's own tail, next to latency_p99_ms
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        out["fps"] = round((len(self.times) - 1) / span, 3) if span > 0 else None
        out["window"] = len(self.latency)
        return out


def stall_reason(now: float, start: float, submitted: int, last_submit: float | None, busy: dict,
                 hint: str | None) -> str:
    """Why no result came: the stage that is stuck, or the input that stopped."""
    for stage, what in (("callback", "the on_result callback has been running for {:.1f} s (it runs on the "
                                     "worker's thread: hand slow work to another thread)"),
                        ("model", "the model has been running on one frame for {:.1f} s (a slow device, or the "
                                  "first frame at a new size building a backend)"),
                        ("pre", "pre-processing one frame has taken {:.1f} s"),
                        ("post", "post-processing one frame has taken {:.1f} s")):
        if busy.get(stage) is not None and now - busy[stage] > 1.0:
            return what.format(now - busy[stage]) + (f"; {hint}" if hint else "")
    if submitted == 0:
        why = f"no frame was submitted in the {now - start:.1f} s since the start"
    elif last_submit is not None and now - last_submit > 1.0:
        why = f"no frame was submitted for {now - last_submit:.1f} s"
    else:
        why = "frames are submitted but none finished"
    return why + (f"; {hint}" if hint else " (is the camera / producer running?)")


def _stream_for(device: torch.device):
    return torch.cuda.Stream(device) if device.type == "cuda" else None


def _sync(stream) -> None:
    if stream is not None:
        stream.synchronize()


class Stages:
    """The pre / model / post loops of one runner; all shared state lives under `runner._cv`."""

    def __init__(self, runner, segmenter, depth_unit, gil_free: bool = True):
        self.r, self.seg, self.depth_unit = runner, segmenter, depth_unit
        self.infer = segmenter.infer  # a duck-typed infer(r, d) runs as it is
        if gil_free and _names(segmenter.infer, "gil_free"):
            self.infer = functools.partial(segmenter.infer, gil_free=True)
        self.post_names_confidence = _names(segmenter.postprocess, "confidence")
        self.prepped: Frame | None = None
        self.to_post: Frame | None = None
        self.done = {"pre": False, "model": False, "post": False}
        self.busy_since: dict[str, float | None] = {"pre": None, "model": None, "post": None, "callback": None}
        self.ema = {"pre": None, "model": None}
        self.holding = False  # the idle model waits for a fresher frame than the prepared one
        self.in_pre: Frame | None = None  # the frame the pre-processing stage is working on
        self.device = torch.device(getattr(segmenter, "device", "cpu"))

    def postprocess(self, logits, frame_hw, is_tensor):
        """The Segmenter's postprocess of one frame, labels only while the runner's `confidence` is
        off (for a postprocess that takes the keyword): the post stage's and warm_up's."""
        if self.r.confidence or not self.post_names_confidence:
            return self.seg.postprocess(logits, frame_hw, True, is_tensor)
        return self.seg.postprocess(logits, frame_hw, True, is_tensor, confidence=False)

    def _wait_for_input(self, slot: str, upstream: str, stage: str) -> bool:
        """Lock held: wait until the `slot` before `stage` holds a frame. False (and `stage` marked
        done) once the runner aborted, or the `upstream` stage finished and nothing is left."""
        while getattr(self, slot) is None and not self.r._aborted and not self.done[upstream]:
            self.r._cv.wait()
        if self.r._aborted or getattr(self, slot) is None:
            self.done[stage] = True
            self.r._cv.notify_all()
            return False
        return True

    def drop_slots(self) -> None:
        for name in ("prepped", "to_post"):
            if getattr(self, name) is not None:
                self.r._discard_locked(getattr(self, name))
                setattr(self, name, None)

    def _ema(self, key: str, seconds: float) -> None:
        old = self.ema[key]
        self.ema[key] = seconds if old is None else 0.8 * old + 0.2 * seconds

    def _pre_wait(self) -> float | None:
        """Seconds to wait before pre-processing the next frame (None: go now).

        Just in time: when the model is about to be free (its running mean time minus ours), so
        the frame it gets is the newest and not one that waited a whole inference. With a frame
        already prepared and the model running late, a newer frame replaces it (keep-latest,
        queue depth 1 only: deeper queues keep their order), at most every 4 pre-processing times
        so a flat-out producer cannot turn the pre-processing thread into a busy loop.
        """
        now = time.monotonic()
        start, model, pre = self.busy_since["model"], self.ema["model"], self.ema["pre"]
        if self.holding:
            return None  # the idle model waits for a fresher frame: prepare the one that came
        if self.prepped is not None and (start is None or self.r.queue_depth > 1):
            return 0.05  # the model takes it now, or a deeper queue keeps its order
        if start is None:
            return None
        if model is None or pre is None:  # no timing yet: wait for the model rather than guess
            return 0.05
        left = start + model - pre - max(0.25 * pre + 0.001, 0.05 * model) - now
        if left > 0:
            return left
        if self.prepped is not None:
            age, every = now - self.prepped.ready, max(4 * pre, 0.005)
            return every - age if age < every else None
        return None

    # ------------------------------------------------------------------ loops
    def pre_loop(self) -> None:
        stream = _stream_for(self.device)
        with torch.inference_mode(), (torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()):
            while True:
                with self.r._cv:
                    while not self.r._aborted:
                        if not self.r._inbox:
                            if self.r._closing:
                                break
                            self.r._cv.wait()
                            continue
                        wait = self._pre_wait()
                        if wait is None:
                            break
                        self.r._cv.wait(wait)
                    if self.r._aborted or not self.r._inbox:
                        self.done["pre"] = True
                        self.r._cv.notify_all()
                        return
                    frame = self.in_pre = self.r._inbox.popleft()
                    self.busy_since["pre"] = t0 = time.monotonic()
                try:
                    if frame.event is not None:  # our stage stream (the context above sets it current)
                        torch.cuda.current_stream().wait_event(frame.event)
                    frame.tensors = self.seg.preprocess(frame.rgb, frame.depth, self.depth_unit)
                    _sync(stream)
                except Exception as exc:  # noqa: BLE001 - handed to the caller by _fail
                    self.in_pre = None
                    self._clear("pre")
                    self.r._fail(frame, "pre-processing", exc)
                    continue
                with self.r._cv:
                    self.busy_since["pre"], self.in_pre = None, None
                    dt = time.monotonic() - t0
                    self._ema("pre", dt)
                    frame.stage_ms["pre_ms"] = 1000 * dt
                    if self.r._aborted:
                        self.r._discard_locked(frame)
                        continue
                    if self.prepped is not None and frame.warm is not None and self.prepped.warm is None:
                        self.r._discard_locked(frame)  # warm_up's frame never displaces a live one
                        continue
                    if self.prepped is not None:  # the model never took it: the newer frame wins
                        self.r._discard_locked(self.prepped)
                    frame.ready = time.monotonic()
                    self.prepped = frame
                    self.r._cv.notify_all()

    def model_loop(self) -> None:
        stream = _stream_for(self.device)
        with torch.inference_mode(), (torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()):
            while True:
                with self.r._cv:
                    if not self._wait_for_input("prepped", "pre", "model"):
                        return
                    if self.r.queue_depth == 1:
                        self._wait_for_fresher()
                    if self.r._aborted or self.prepped is None:
                        continue
                    frame, self.prepped = self.prepped, None
                    self.busy_since["model"] = t0 = time.monotonic()
                    self.r._cv.notify_all()  # the pre stage may start on the next frame
                try:
                    r, d = frame.tensors[0], frame.tensors[1]
                    frame.logits = self.infer(r, d)
                    _sync(stream)
                except Exception as exc:  # noqa: BLE001
                    self._clear("model")
                    self.r._fail(frame, "model", exc)
                    continue
                frame.tensors = (None, None, *frame.tensors[2:])
                dt = time.monotonic() - t0
                frame.stage_ms["model_ms"] = 1000 * dt
                with self.r._cv:
                    self._ema("model", dt)
                    while self.to_post is not None and not self.r._aborted:
                        self.r._cv.wait()
                    self.busy_since["model"] = None
                    if self.r._aborted:
                        self.r._discard_locked(frame)
                        continue
                    self.to_post = frame
                    self.r._cv.notify_all()

    def newest_before_model(self) -> Frame | None:
        """The newest frame not yet in the model: prepared, being prepared or waiting (lock held)."""
        frames = [f for f in (self.prepped, self.in_pre, *self.r._inbox) if f]  # the inbox: a frame or two
        return max(frames, key=lambda f: f.index) if frames else None

    def hold_for_fresher(self, frame: Frame, now: float) -> float | None:
        """Seconds the idle model should wait for the camera's next frame instead of running
        `frame`, the newest it has (None: no wait). Only for a producer faster than the model, when
        that frame is old and the next is due sooner than `frame` is old and within half an
        inference: its result then comes out fresher, for a short idle gap. The wait allows a
        quarter period of camera jitter plus one pre-processing; a flat-out producer always has a
        fresh frame, so it never waits."""
        gap, model, last = self.r._submit_gap, self.ema["model"], self.r._last_submit
        if frame.warm is not None:  # warm_up's frame: no camera frame is coming to replace it
            return None
        if self.r._closing or gap is None or model is None or last is None or last > frame.submitted + 1e-6:
            return None
        if gap >= model:  # frames come no faster than the model runs (or only when it takes one): nothing to gain
            return None
        age = now - frame.submitted
        if age < 0.1 * model:
            return None  # fresh enough: a few milliseconds are not worth an idle model
        next_in = last + gap - now
        if next_in >= age or next_in > 0.5 * model:
            return None
        return max(next_in, 0.0) + 0.25 * gap + (self.ema["pre"] or 0.0)

    def _wait_for_fresher(self) -> None:
        """Keep-latest only, lock held, the model idle: (1) hold out for the camera's next frame when
        `hold_for_fresher` says it pays, until it is submitted; (2) when a frame newer than the
        prepared one is waiting or being prepared, wait for the pre-processing stage to finish it
        instead of running the older one, if it is newer by more than the wait costs (4
        pre-processing times, a tenth of an inference: a camera's next frame is, a flat-out
        producer's is not), and for at most that long. Event-driven: the wait ends as soon as the
        frame is ready, not at a guessed deadline."""
        r = self.r
        newest = self.newest_before_model()
        seconds = self.hold_for_fresher(newest, time.monotonic())
        self.holding = True
        r._cv.notify_all()
        try:
            if seconds:
                before = r._submitted
                self._wait_while(lambda: r._submitted == before and not r._closing, seconds)
                newest = self.newest_before_model()
            worth = max(4 * (self.ema["pre"] or 0.001), 0.1 * (self.ema["model"] or 0.0))
            # a slow pre-processing (a stalled GPU copy) is not waited out: at most what the frame is worth
            self._wait_while(lambda: (self.prepped is not None and newest is not None
                                      and self.prepped.index < newest.index
                                      and newest.submitted - self.prepped.submitted > worth
                                      and (self.in_pre is not None or r._inbox)), worth)
        finally:
            self.holding = False

    def _wait_while(self, condition, seconds: float) -> None:
        """Wait (lock held) while `condition()` holds, for at most `seconds`, re-checking on every
        notification and at least every 0.1 s; an abort ends it."""
        deadline = time.monotonic() + seconds
        while condition() and not self.r._aborted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.r._cv.wait(min(left, 0.1))

    def post_loop(self) -> None:
        stream = _stream_for(self.device)
        with torch.inference_mode(), (torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()):
            while True:
                with self.r._cv:
                    if not self._wait_for_input("to_post", "model", "post"):
                        return
                    frame, self.to_post = self.to_post, None
                    self.busy_since["post"] = t0 = time.monotonic()
                    self.r._cv.notify_all()
                try:
                    frame_hw, is_tensor = frame.tensors[2], frame.tensors[3]
                    seg = self.postprocess(frame.logits, frame_hw, is_tensor)
                    _sync(stream)
                except Exception as exc:  # noqa: BLE001
                    self._clear("post")
                    self.r._fail(frame, "post-processing", exc)
                    continue
                frame.logits = frame.tensors = None
                frame.stage_ms["post_ms"] = 1000 * (time.monotonic() - t0)
                if frame.warm is not None:  # warm_up's frame: its work is done, nothing is delivered
                    self._clear("post")
                    frame.warm.ran = True
                    frame.warm.done.set()
                    continue
                latency = (self.r.clock() - frame.stamp_ns) / 1e6
                result = self.r.result_type(frame.stamp_ns, seg, frame.rgb, frame.depth, frame.meta, frame.index,
                                            round(latency, 3), round(frame.stage_ms.get("model_ms", 0.0), 3),
                                            frame.size)
                with self.r._cv:
                    self.busy_since["post"] = None
                    if self.r._aborted:
                        self.r._discard_locked(frame)
                        continue
                    self.r._deliver_locked(result, frame.submitted, frame.stage_ms)
                    if self.r.on_result is not None:
                        self.busy_since["callback"] = time.monotonic()
                if self.r.on_result is not None:
                    try:
                        self.r.on_result(result)
                    except Exception as exc:  # noqa: BLE001
                        self.r._fail(frame, "on_result callback", exc)
                    finally:
                        self._clear("callback")

    def _clear(self, stage: str) -> None:
        with self.r._cv:
            self.busy_since[stage] = None
            self.r._cv.notify_all()


def _names(fn, keyword: str) -> bool:
    """Whether `fn` takes `keyword` by name (a Segmenter's infer takes gil_free, its postprocess
    confidence; a stand-in's need not, and one taking *args / **kwargs, such as a scripted module,
    would choke on it)."""
    try:
        return keyword in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
