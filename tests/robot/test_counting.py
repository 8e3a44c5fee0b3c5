"""The node's ROS-free decisions: frames lost upstream from stamp gaps, the health a /diagnostics
monitor shows, the closing line, run-time parameter changes, the warm-up before the first frame
(off the caller's thread, pairs meanwhile counted), inactive frames, mono8 confidence."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from asymformer import Segmenter
from asymformer.robot import messages as M
from asymformer.robot.counting import ERROR, OK, WARN, StampGaps, closing_line, health
from asymformer.robot.live import LiveSegmentation, NodeSettings, changed_settings

from . import rosmsgs as R
from .live_helpers import H, W, messages, save_checkpoint, wait_for

PERIOD = 33_333_333


def test_frames_lost_upstream_are_estimated_from_stamp_gaps():
    gaps = StampGaps()
    stamps = [i * PERIOD + (i % 3) * 1_000_000 for i in range(40) if i not in (10, 11, 12, 30)]  # jitter, 4 lost
    assert sum(gaps.add(s) for s in stamps) == 4 and gaps.lost == 4
    assert abs(gaps.period_ns - PERIOD) < 2_000_000
    assert gaps.add(0) == 0 and gaps.period_ns is None  # a bag that loops: the estimate restarts, nothing counted


def stats(**kw):
    base = {"quiet_s": {"color": 0.1, "depth": 0.1, "info": 0.1}, "rates": {"color": 30.0, "output": 29.0},
            "failed": False}
    return {**base, **kw}


def test_health_names_the_reason():
    assert health(stats(), 5.0, True, False) == (OK, "running")
    assert health(stats(), 5.0, True, True) == (OK, "warming up the model")
    level, reason = health(stats(quiet_s={"color": 0.1, "depth": 7.0, "info": 0.1}), 5.0, False, False)
    assert level == ERROR and reason == "stalled input: no depth for 7.0 s"
    level, reason = health(stats(quiet_s={"color": 0.1, "depth": 0.1, "info": 9.0}), 5.0, True, False)
    assert level == WARN and reason.startswith("no camera info")
    level, reason = health(stats(rates={"color": 30.0, "output": 8.0}), 5.0, True, False)
    assert level == WARN and reason.startswith("falling behind: 8.0 results/s for 30.0 colour frames/s")


def test_the_closing_line_accounts_for_every_frame():
    s = {"received": 300, "processed": 250, "dropped_total": 48, "lost_upstream": 2, "latency_p50_ms": 41.25,
         "latency_p99_ms": 80.0, "dropped_by_reason": {"stale": 40, "warming up": 8, "unpaired": 0}}
    assert closing_line(s) == ("received 300, processed 250, dropped 48 (stale 40, warming up 8), lost upstream 2, "
                               "latency p50 41.2 ms, p99 80.0 ms")


def test_run_time_parameters_are_checked_and_some_need_a_restart():
    current = {**NodeSettings.DEFAULTS, "checkpoint": "m.safetensors", "size": "480x640"}
    settings = NodeSettings.from_params(current)
    with pytest.raises(ValueError, match="'alpha' must be between 0 and 1, got 2.0"):
        changed_settings(settings, current, {"alpha": 2.0})
    with pytest.raises(ValueError, match="'size' cannot change while the node runs: restart the node"):
        changed_settings(settings, current, {"size": "240x320"})
    with pytest.raises(ValueError, match="'size' must be HxW"):  # a lifecycle node still refuses a bad value
        changed_settings(settings, current, {"size": "abc"}, lifecycle=True)
    kept = changed_settings(settings, current, {"size": "240x320", "alpha": 0.2}, lifecycle=True)
    assert kept.size == (480, 640) and kept.alpha == 0.2  # size at the next configure; alpha at once
    new = changed_settings(settings, current, {"outputs": ["labels"], "slop": 0.05, "use_sim_time": True})
    assert new.outputs == ("labels",) and new.slop == 0.05
    assert changed_settings(settings, current, {"size": "480x640"}) == settings  # unchanged value: fine


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    return Segmenter(save_checkpoint(tmp_path_factory.mktemp("counting") / "tiny.safetensors"), device="cpu")


def make(seg, **params):
    sent, logs = [], []
    settings = NodeSettings.from_params({"checkpoint": "m", "class_info": False, **params})
    live = LiveSegmentation(seg, settings, M.MessageTypes.from_typestore(R.TS2), lambda k, m: sent.append((k, m)),
                            log=lambda level, text: logs.append((level, text)))
    return live, sent, logs


def feed(live, start, n):
    for i in range(start, start + n):
        color, depth, _ = messages(i)
        live.on_color(color)
        live.on_depth(depth)


def test_the_model_warms_up_at_start_off_the_callers_thread_and_early_pairs_are_counted(seg):
    live, sent, logs = make(seg, size=f"{H}x{W}", outputs="labels", queue_depth=4)
    gate = threading.Event()
    warm_up = live.runner.warm_up
    live.runner.warm_up = lambda *a, **k: (gate.wait(10), warm_up(*a, **k))[1]  # a slow model build
    live.start()  # returns at once: the executor thread is never blocked by the model
    assert live.warming
    feed(live, 0, 4)  # decided while warming (the last at once: the camera's period is known by then): counted
    gate.set()
    assert wait_for(lambda: not live.warming)
    feed(live, 4, 3)
    assert wait_for(lambda: len(sent) >= 3), (live.stats(), logs)
    stats = live.close()
    assert stats["dropped_by_reason"]["warming up"] == 4 and stats["received"] == 7
    assert stats["processed"] == 3 and stats["processed"] + stats["dropped"] == 7
    assert stats["warm_up_s"] > 0
    assert any(t.startswith(f"model ready for {H}×{W} frames") for _, t in logs)


def test_a_failed_warm_up_is_one_error_line_and_frames_still_flow(seg):
    """A warm-up that raises (a backend that cannot build at that size, a stage failing on the
    hidden frame) used to end the intake thread: every later pair was counted "warming up" forever."""
    live, sent, logs = make(seg, size=f"{H}x{W}", outputs="labels", queue_depth=4)

    def failing(*a, **k):
        raise ValueError("no kernel for this size")

    live.runner.warm_up = failing
    live.start()
    assert wait_for(lambda: not live.warming)
    feed(live, 0, 3)
    assert wait_for(lambda: len(sent) >= 2), (live.stats(), logs)
    live.close()
    errors = [t for level, t in logs if level == "error"]
    assert errors == [f"warming up the model for {H}×{W} frames failed: ValueError: no kernel for this size"]


def test_inactive_frames_are_counted_and_updates_apply(seg):
    live, sent, _ = make(seg, size=f"{H}x{W}", outputs="labels,confidence")
    live.start()
    assert wait_for(lambda: not live.warming)
    live.set_active(False)
    feed(live, 0, 3)
    live.set_active(True)
    live.update(NodeSettings.from_params({"checkpoint": "m", "outputs": "confidence", "slop": 0.01,
                                          "confidence_encoding": "mono8", "queue_depth": 2}))
    assert live.pairer.slop_ns == 10_000_000 and live.runner.queue_depth == 2
    feed(live, 3, 3)
    assert wait_for(lambda: len(sent) >= 1)
    stats = live.close()
    assert stats["dropped_by_reason"]["inactive"] == 3
    assert {k for k, _ in sent} == {"confidence"} and sent[0][1].encoding == "mono8"
    conf = np.frombuffer(bytes(sent[0][1].data), np.uint8)
    assert conf.max() <= 255 and conf.min() >= 255 // 3  # softmax over 3 classes: at least a third
