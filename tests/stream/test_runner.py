"""StreamRunner: results equal the Segmenter's, keep-latest drops, bounded memory, latency
stats, stall warnings with their reason, worker errors reaching the caller, close() with a
frame in flight, frame-size changes, bad submits. A `Gated` stand-in wraps a real Segmenter
so a test decides when an inference ends (or that it raises)."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
import pytest

from asymformer import Segmenter
from asymformer.stream import StreamRunner

H, W = 48, 64


@pytest.fixture(scope="module")
def seg(small_model):
    return Segmenter(small_model, device="cpu")


class Gated:
    """A Segmenter whose infer() waits for `gate` (when set) and raises on `fail_on` stamps."""

    def __init__(self, seg, gated=False, fail_on=(), sleep=0.0):
        self.seg, self.device, self.fail_on, self.sleep = seg, seg.device, set(fail_on), sleep
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.started = threading.Event()
        self.calls = 0

    def preprocess(self, rgb, depth, depth_unit=None):
        r = self.seg.preprocess(rgb, depth, depth_unit)
        if int(np.asarray(rgb)[0, 0, 0]) in self.fail_on:
            raise ValueError("bad frame")
        return r

    def infer(self, r, d):
        self.calls += 1
        self.started.set()
        assert self.gate.wait(10)
        time.sleep(self.sleep)
        return self.seg.infer(r, d)

    def postprocess(self, *args, **kw):
        return self.seg.postprocess(*args, **kw)


def frame(i, h=H, w=W):
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[0, 0, 0] = i % 256  # the marker Gated.fail_on looks at
    return rgb, rng.integers(400, 6000, (h, w), dtype=np.uint16)


def test_results_are_the_segmenters_with_stamps_meta_and_stats(seg):
    got = []
    with StreamRunner(seg, on_result=got.append, queue_depth=4, result_depth=4) as runner:
        for i in range(3):
            assert runner.submit(*frame(i), stamp_ns=time.time_ns() - 50_000_000, meta={"i": i})
            while runner.stats()["processed"] < i + 1:  # one at a time: nothing dropped
                time.sleep(0.005)
        results = [runner.get(5) for _ in range(3)]
    stats = runner.stats()
    assert [r.meta["i"] for r in results] == [0, 1, 2] == [r.index for r in got]
    for r in results:
        want = seg(*frame(r.index))
        np.testing.assert_array_equal(r.labels, want.labels)
        np.testing.assert_allclose(r.confidence, want.confidence, rtol=1e-6)
        assert r.frame_size == (H, W) and r.latency_ms >= 50  # stamped 50 ms before submit
    assert stats["processed"] == 3 and stats["dropped"] == 0 and stats["errors"] == 0
    assert 50 <= stats["latency_p50_ms"] <= stats["latency_p99_ms"] == stats["latency_max_ms"]
    assert stats["model_ms"] > 0 and stats["pre_ms"] > 0 and stats["post_ms"] > 0 and not stats["failed"]
    assert runner.get(0.01) is None and list(runner) == []  # closed and read: iteration ends


def test_fast_producer_drops_old_frames_and_memory_stays_bounded(seg):
    gated = Gated(seg, sleep=0.02)
    runner = StreamRunner(gated, queue_depth=2, result_depth=3)
    accepted = []
    for i in range(300):  # ~100x faster than the model
        accepted.append(runner.submit(*frame(i % 7), stamp_ns=i + 1))
        assert len(runner._inbox) <= 2 and len(runner._results) <= 3
    stats = runner.close()
    assert accepted[:1] == [True] and accepted.count(False) > 250  # each False dropped an older frame
    assert stats["submitted"] == 300 == stats["processed"] + stats["dropped"] + stats["errors"]
    assert 1 <= stats["processed"] < stats["dropped"]
    assert len(runner._stats.latency) <= runner._stats.latency.maxlen


def test_keep_latest_processes_the_newest_frames_in_order(seg):
    gated = Gated(seg, gated=True)
    runner = StreamRunner(gated, queue_depth=3, result_depth=10)
    runner.submit(*frame(0), stamp_ns=1)
    assert gated.started.wait(5)  # frame 0 is in the model
    for i in range(1, 10):
        runner.submit(*frame(i), stamp_ns=i + 1)
    gated.gate.set()
    runner.close()
    done = [r.index for r in runner]
    # frame 0 was in flight; of 1..9 the model-side slot may hold one more, the queue keeps the 3 newest
    assert done[0] == 0 and done[-3:] == [7, 8, 9] and len(done) <= 5 and done == sorted(done)


def test_latest_returns_the_newest_unread_result(seg):
    runner = StreamRunner(seg, queue_depth=5, result_depth=5)
    for i in range(3):
        runner.submit(*frame(i), stamp_ns=i + 1)
    runner.close()
    newest = runner.latest()
    assert newest.index == 2 and runner.latest() is None


def test_no_input_warns_once_with_the_reason_and_the_hint(seg):
    warnings = []
    runner = StreamRunner(seg, stall_after_s=0.2, on_warning=warnings.append,
                          stall_hint=lambda: "colour arrives on 'rgb' but nothing on 'depth'")
    time.sleep(0.9)
    runner.close()
    assert len(warnings) == 1, warnings  # once per stall, not every tick
    assert "no segmentation result for" in warnings[0] and "no frame was submitted" in warnings[0]
    assert "nothing on 'depth'" in warnings[0]


def test_a_stuck_model_is_named_in_the_warning(seg):
    warnings = []
    gated = Gated(seg, gated=True)
    runner = StreamRunner(gated, stall_after_s=2.0, on_warning=warnings.append)
    runner.submit(*frame(0), stamp_ns=1)
    deadline = time.monotonic() + 6
    while not warnings and time.monotonic() < deadline:
        time.sleep(0.05)
    gated.gate.set()
    runner.close()
    assert warnings and "the model has been running on one frame" in warnings[0], warnings


def test_a_worker_exception_is_raised_on_the_next_call(seg):
    runner = StreamRunner(Gated(seg, fail_on={3}))
    runner.submit(*frame(3), stamp_ns=7)
    deadline = time.monotonic() + 5
    while not runner.stats()["failed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ValueError, match="bad frame") as err:
        runner.submit(*frame(4), stamp_ns=8)
    assert "pre-processing stage on the frame with stamp 7" in "".join(err.value.__notes__)
    with pytest.raises(RuntimeError, match="stopped after a worker error"):
        runner.submit(*frame(5), stamp_ns=9)
    assert not any(t.is_alive() for t in runner._threads[:3])  # stopped, not silently dead
    runner.close()


def test_on_error_reports_and_the_stream_goes_on(seg):
    errors = []
    runner = StreamRunner(Gated(seg, fail_on={1}), on_error=errors.append, queue_depth=4, result_depth=4)
    for i in range(3):
        runner.submit(*frame(i), stamp_ns=i + 1)
    stats = runner.close()
    assert [str(e) for e in errors] == ["bad frame"]
    assert [r.index for r in runner] == [0, 2] and stats["errors"] == 1 and stats["processed"] == 2


def test_a_raising_callback_stops_the_runner_and_is_raised(seg):
    def boom(result):
        raise KeyError("planner gone")

    runner = StreamRunner(seg, on_result=boom)
    runner.submit(*frame(0), stamp_ns=1)
    with pytest.raises(KeyError, match="planner gone"):
        runner.close()


@pytest.mark.parametrize("drain", [False, True])
def test_close_with_a_frame_in_flight(seg, drain):
    gated = Gated(seg, gated=True)
    got = []
    runner = StreamRunner(gated, on_result=got.append)
    runner.submit(*frame(0), stamp_ns=1)
    assert gated.started.wait(5)
    runner.submit(*frame(1), stamp_ns=2)  # waiting behind it
    closer = threading.Thread(target=lambda: got.append(runner.close(drain=drain)))
    closer.start()
    time.sleep(0.1)
    assert closer.is_alive()  # an inference cannot be interrupted: close waits for it
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit(*frame(2), stamp_ns=3)
    gated.gate.set()
    closer.join(10)
    assert not closer.is_alive() and not any(t.is_alive() for t in runner._threads)
    stats = got.pop()
    assert [r.index for r in got] == ([0, 1] if drain else [])
    assert (stats["processed"], stats["dropped"]) == ((2, 0) if drain else (0, 2))


def test_a_new_frame_size_mid_stream(seg):
    warnings = []
    runner = StreamRunner(seg, on_warning=warnings.append, queue_depth=3, result_depth=3)
    runner.submit(*frame(0), stamp_ns=1)
    runner.submit(*frame(1, 40, 56), stamp_ns=2)
    runner.submit(*frame(2, 40, 56), stamp_ns=3)
    stats = runner.close()
    shapes = [r.labels.shape for r in runner]
    assert shapes == [(H, W), (40, 56), (40, 56)] and stats["size_changes"] == 1
    assert len(warnings) == 1 and "frame size changed from 48×64 to 40×56 at stamp 2" in warnings[0]
    np.testing.assert_array_equal(seg(*frame(1, 40, 56)).labels, seg(*frame(1, 40, 56)).labels)


def test_bad_submits_fail_in_the_callers_thread_by_name(seg):
    with pytest.raises(ValueError, match="queue_depth must be an integer >= 1"):
        StreamRunner(seg, queue_depth=0)
    with pytest.raises(ValueError, match="has no preprocess"):
        StreamRunner(object())
    runner = StreamRunner(seg)
    rgb, depth = frame(0)
    with pytest.raises(ValueError, match=r"depth \(40, 64\) does not match rgb 48×64; register depth"):
        runner.submit(rgb, depth[:40], stamp_ns=1)
    with pytest.raises(ValueError, match="rgb must be H×W×3 \\(one frame\\)"):
        runner.submit(rgb[None], depth, stamp_ns=1)
    with pytest.raises(ValueError, match="stamp_ns must be a non-negative integer"):
        runner.submit(rgb, depth, stamp_ns=1.5)
    runner.close()
    with pytest.raises(RuntimeError, match="the runner is closed"):
        runner.submit(rgb, depth, stamp_ns=1)
    assert runner.stats()["submitted"] == 0


def test_submitted_arrays_are_copied(seg):
    rgb, depth = frame(0)
    want = seg(rgb, depth).labels
    runner = StreamRunner(Gated(seg, gated=True), result_depth=1)
    runner.submit(rgb, depth, stamp_ns=1)
    rgb[:] = 0  # a driver reusing its buffer
    depth[:] = 0
    runner.segmenter.gate.set()
    runner.close()
    np.testing.assert_array_equal(runner.latest().labels, want)


def test_close_from_the_result_callback_and_reset_stats(seg):
    holder = {}

    def stop_after_first(result):
        holder["stats"] = holder["runner"].close(drain=False)

    runner = holder["runner"] = StreamRunner(seg, on_result=stop_after_first, queue_depth=3)
    for i in range(3):
        runner.submit(*frame(i), stamp_ns=i + 1)
    assert wait_until(lambda: "stats" in holder)
    assert holder["stats"]["processed"] == 1 and runner.closed
    runner.reset_stats()
    stats = runner.stats()
    assert stats["processed"] == 1 and stats["latency_p50_ms"] is None and stats["window"] == 0


def wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def test_an_idle_model_holds_out_for_a_fresher_frame_only_when_it_pays(seg):
    """The rule behind the camera-rate latency: with the model free and its newest frame old, wait
    for the camera's next frame if it is due sooner than that frame is old (and within half an
    inference); never for a fresh frame, a far-off one, a producer no faster than the model, or
    when a newer frame came already."""
    from asymformer.stream.frame import Frame

    runner = StreamRunner(seg)
    stages = runner._stages
    stages.ema.update(pre=0.001, model=0.1)
    f = Frame(0, 1, None, None, None, (H, W), submitted=100.0)
    runner._last_submit, runner._submit_gap = 100.0, 0.033  # a 30 FPS camera; f is its newest frame
    # 25 ms old, the next is due in 8 ms: wait that, a quarter period of jitter and one pre-processing
    assert stages.hold_for_fresher(f, 100.025) == pytest.approx(0.008 + 0.033 / 4 + 0.001)
    assert stages.hold_for_fresher(f, 100.005) is None  # 5 ms old: fresh enough
    runner._submit_gap = 0.06
    assert stages.hold_for_fresher(f, 100.03) is None  # the next frame is further off than this one is old
    runner._submit_gap = 0.15
    assert stages.hold_for_fresher(f, 100.1) is None  # frames come slower than the model runs
    runner._submit_gap, runner._last_submit = 0.033, 100.02
    assert stages.hold_for_fresher(f, 100.025) is None  # a newer frame came already: no waiting for a third
    runner.close()


class FakeRunner:
    """What `Stages` reads from its runner, without the runner's threads."""

    def __init__(self):
        self._cv = threading.Condition()
        self._inbox = deque()
        self._submitted, self._aborted, self._closing = 0, False, False
        self._submit_gap = self._last_submit = None
        self.queue_depth = 1


def stages_at(seg, prepped_at: float, newer_at: float):
    """An idle model with a prepared frame submitted at `prepped_at` and a newer one waiting in the
    inbox, submitted at `newer_at` (monotonic seconds); timings of a 100 ms model."""
    from asymformer.stream.frame import Frame
    from asymformer.stream.stages import Stages

    r = FakeRunner()
    st = Stages(r, seg, None)
    st.ema.update(pre=0.002, model=0.1)
    st.prepped = Frame(0, 1, None, None, None, (H, W), submitted=prepped_at)
    r._inbox.append(Frame(1, 2, None, None, None, (H, W), submitted=newer_at))
    r._submitted, r._last_submit = 2, newer_at
    return r, st


def test_the_idle_model_waits_for_a_much_newer_frame_to_be_prepared(seg):
    """A camera frame 33 ms newer than the prepared one is waiting: the model waits until the
    pre-processing stage has prepared it (here a stand-in taking 5 ms) instead of running the older
    one, but no longer than the gain is worth (10 ms for a 100 ms model: a stand-in taking 60 ms is
    not waited out); a frame only 5 ms newer (a flat-out producer) is not worth any wait."""
    def run(pre_s: float, prepped_age: float, newer_age: float):
        now = time.monotonic()
        r, st = stages_at(seg, now - prepped_age, now - newer_age)

        def pre_stage():
            time.sleep(pre_s)
            with r._cv:
                st.prepped = r._inbox.popleft()
                r._cv.notify_all()

        threading.Thread(target=pre_stage, daemon=True).start()
        t0 = time.monotonic()
        with r._cv:
            st._wait_for_fresher()
        return st.prepped.index, time.monotonic() - t0, st.holding

    index, waited, holding = run(0.005, 0.040, 0.007)
    assert index == 1 and waited >= 0.004 and not holding
    index, waited, _ = run(0.06, 0.040, 0.007)
    assert index == 0 and 0.009 <= waited < 0.05  # gave up after the 10 ms it was worth
    index, waited, _ = run(0.005, 0.010, 0.005)
    assert index == 0 and waited < 0.004


def test_the_hold_ends_when_the_next_frame_is_submitted(seg):
    """Holding out for the camera's next frame is event-driven: it ends at the submit, not at the
    deadline (and the frame is then waited for through pre-processing like any newer one)."""
    from asymformer.stream.frame import Frame
    from asymformer.stream.stages import Stages

    r = FakeRunner()
    st = Stages(r, seg, None)
    st.ema.update(pre=0.002, model=0.4)
    now = time.monotonic()
    st.prepped = Frame(0, 1, None, None, None, (H, W), submitted=now - 0.2)
    r._submitted, r._last_submit, r._submit_gap = 1, now - 0.2, 0.25  # next due in 50 ms; wait allows ~115
    nxt = Frame(1, 2, None, None, None, (H, W), submitted=0.0)

    def camera_and_pre_stage():
        time.sleep(0.03)
        with r._cv:
            nxt.submitted = time.monotonic()
            r._inbox.append(nxt)
            r._submitted += 1
            r._cv.notify_all()
        time.sleep(0.01)
        with r._cv:
            st.prepped = r._inbox.popleft()
            r._cv.notify_all()

    threading.Thread(target=camera_and_pre_stage).start()
    t0 = time.monotonic()
    with r._cv:
        st._wait_for_fresher()
    assert st.prepped is nxt and 0.035 <= time.monotonic() - t0 < 0.1


def test_tensor_frames_come_back_as_tensors(seg):
    import torch

    rgb, depth = frame(0)
    rgb_t, depth_t = torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), torch.from_numpy(depth.astype(np.int32))
    runner = StreamRunner(seg, result_depth=1)
    runner.submit(rgb_t, depth_t, stamp_ns=1)
    runner.close()
    got = runner.latest()
    want = seg(rgb_t, depth_t)
    assert isinstance(got.labels, torch.Tensor) and got.frame_size == (H, W)
    assert torch.equal(got.labels, want.labels)


def test_warm_up_builds_the_gil_free_path_and_counts_nothing(small_model):
    """warm_up runs the first frame of a size through the stages before the stream starts: the
    trace the model thread would otherwise build on a live frame exists afterwards, and nothing was
    delivered, counted or dropped."""
    seg = Segmenter(small_model, device="cpu")
    runner = StreamRunner(seg, result_depth=4)
    rgb, depth = frame(0)
    assert runner.warm_up(rgb, depth) > 0
    assert len(seg._traces) == 1
    stats = runner.stats()
    assert (stats["processed"], stats["dropped"], stats["submitted"]) == (0, 0, 0) and runner.latest() is None
    with pytest.raises(ValueError, match="depth"):
        runner.warm_up(rgb, depth[:10])
    runner.submit(rgb, depth, stamp_ns=5)
    runner.close()
    assert np.array_equal(runner.latest().labels, seg(rgb, depth).labels)
    with pytest.raises(RuntimeError, match="closed"):
        runner.warm_up(rgb, depth)


def test_labels_only_until_the_confidence_is_asked_for(seg):
    """StreamRunner(confidence=False): the same labels without the confidence map (half the
    post-processing); the attribute switches it back on for the next frames, as the node does when
    its `outputs` parameter changes."""
    runner = StreamRunner(seg, result_depth=4, confidence=False)
    rgb, depth = frame(3)
    want = seg(rgb, depth)
    runner.submit(rgb, depth, stamp_ns=1)
    first = runner.get(timeout=30)
    runner.confidence = True
    runner.submit(rgb, depth, stamp_ns=2)
    runner.close()
    second = runner.get(timeout=30)
    assert first.confidence is None and np.array_equal(first.labels, want.labels)
    assert np.array_equal(second.labels, want.labels) and np.allclose(second.confidence, want.confidence)


class OnThreads(Gated):
    """Records which thread ran each stage; `fail_on_thread` makes infer raise on that thread only,
    `gate_thread` makes infer wait for the gate on that thread only."""

    def __init__(self, seg, fail_on_thread=None, gate_thread=None):
        super().__init__(seg)
        self.names, self.fail_on_thread, self.gate_thread = [], fail_on_thread, gate_thread

    def preprocess(self, rgb, depth, depth_unit=None):
        self.names.append(("pre", threading.current_thread().name))
        return self.seg.preprocess(rgb, depth, depth_unit)

    def infer(self, r, d):
        name = threading.current_thread().name
        self.names.append(("model", name))
        if name == self.fail_on_thread:
            raise ValueError("model failed on its thread")
        if name == self.gate_thread:
            self.started.set()
            assert self.gate.wait(10)
        return self.seg.infer(r, d)

    def postprocess(self, *args, **kw):
        self.names.append(("post", threading.current_thread().name))
        return self.seg.postprocess(*args, **kw)


def test_warm_up_runs_each_stage_thread_once_and_delivers_nothing(seg):
    """warm_up's second part sends the frame once through the runner's own threads (their first
    frame builds arenas and buffers: ~110 MB at 480×640 that otherwise came with the first live
    frames); the frame is not delivered, not counted, not in the latency window."""
    g, got = OnThreads(seg), []
    runner = StreamRunner(g, on_result=got.append)
    rgb, depth = frame(0)
    runner.warm_up(rgb, depth, runs=1)
    assert [n for n in g.names if n[1].startswith("asymformer-stream")] == [
        ("pre", "asymformer-stream-pre"), ("model", "asymformer-stream-model"), ("post", "asymformer-stream-post")]
    stats = runner.stats()
    assert stats["warm_up_frames"] == 1 and got == [] and stats["latency_p50_ms"] is None
    assert (stats["submitted"], stats["processed"], stats["dropped"], stats["errors"]) == (0, 0, 0, 0)
    runner.submit(rgb, depth, stamp_ns=7)
    runner.close()
    assert [r.stamp_ns for r in got] == [7] and runner.stats()["dropped"] == 0


def test_warm_up_raises_a_stage_threads_failure_to_its_caller_uncounted(seg):
    """A stage failing on the hidden frame fails warm_up itself (the caller learns at start), not
    on_error, and the stream still runs afterwards."""
    g, errors = OnThreads(seg, fail_on_thread="asymformer-stream-model"), []
    runner = StreamRunner(g, on_error=errors.append, result_depth=1)
    rgb, depth = frame(0)
    with pytest.raises(ValueError, match="model failed on its thread") as info:
        runner.warm_up(rgb, depth, runs=1)
    assert any("warm-up frame" in note for note in info.value.__notes__)
    assert errors == [] and runner.stats()["errors"] == 0 and runner.stats()["warm_up_frames"] == 0
    g.fail_on_thread = None
    runner.submit(rgb, depth, stamp_ns=3)
    runner.close()
    assert runner.latest().stamp_ns == 3


def test_warm_up_with_live_frames_in_flight_loses_none(seg):
    """A warm-up for a new frame size while live frames are in flight (the ROS node on a size
    change): the hidden frame never displaces a live one, so nothing live is dropped."""
    g, got = OnThreads(seg, gate_thread="asymformer-stream-model"), []
    runner = StreamRunner(g, on_result=got.append)
    rgb, depth = frame(0)
    runner.submit(rgb, depth, stamp_ns=1)
    assert g.started.wait(10)  # frame 1 is in the model, held there
    runner.submit(rgb, depth, stamp_ns=2)  # waits for the model
    warm = threading.Thread(target=runner.warm_up, args=(rgb, depth), kwargs={"runs": 1})
    warm.start()
    time.sleep(0.3)
    g.gate.set()
    warm.join(20)
    runner.close()
    assert not warm.is_alive()
    assert [r.stamp_ns for r in got] == [1, 2] and runner.stats()["dropped"] == 0


def test_warm_up_from_a_result_callback_does_not_wait_for_its_own_thread(seg):
    """on_result runs on the post thread: a warm-up from there cannot wait for that thread to run
    its hidden frame (it hung); it runs the caller-thread part only."""
    done, finished = [], threading.Event()

    def on_result(result):
        done.append(runner.warm_up(*frame(1), runs=1))
        finished.set()

    runner = StreamRunner(seg, on_result=on_result)
    runner.submit(*frame(0), stamp_ns=1)
    assert finished.wait(30)  # before the fix: never (the post thread waited for itself)
    runner.close(timeout=30)
    assert len(done) == 1 and runner.stats()["warm_up_frames"] == 0


def test_closing_during_warm_up_ends_it(seg):
    """close(drain=False) while the hidden frame is in the model: warm_up returns or says the
    runner closed, it never waits forever (the ROS node's Ctrl-C during the warm-up)."""
    g = OnThreads(seg, gate_thread="asymformer-stream-model")
    runner = StreamRunner(g, result_depth=1)
    rgb, depth = frame(0)
    outcome = []

    def warm():
        try:
            outcome.append(runner.warm_up(rgb, depth, runs=1))
        except RuntimeError as exc:
            outcome.append(exc)

    t = threading.Thread(target=warm)
    t.start()
    assert g.started.wait(10)
    runner.close(drain=False, timeout=0.05)  # the model thread is still in the gated inference
    g.gate.set()
    t.join(10)
    assert not t.is_alive() and len(outcome) == 1
    assert runner.stats()["dropped"] == 0  # the hidden frame is never counted as a dropped frame


def test_gil_free_reaches_only_an_infer_that_names_it(seg):
    """A stand-in whose infer takes *args / **kwargs (a scripted module, a wrapper) is called as
    infer(r, d): gil_free goes only to an infer that names it, as the Segmenter's does."""
    got = []

    class Star(Gated):
        def infer(self, *args, **kwargs):
            got.append(kwargs)
            return self.seg.infer(*args)

    runner = StreamRunner(Star(seg), result_depth=1)
    runner.submit(*frame(0), stamp_ns=1)
    runner.close()
    assert got == [{}] and runner.latest() is not None
    plain = StreamRunner(seg)
    assert plain._stages.infer.keywords == {"gil_free": True}
    plain.close()
