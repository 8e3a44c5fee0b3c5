"""Colour/depth pairing by header stamp: jitter, missing frames, out-of-order stamps, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from asymformer.robot.pairing import Pair, StampPairer

MS = 1_000_000
PERIOD = 33 * MS


def _run(events, **kw):
    """events: (kind, stamp_ns, item) in arrival order -> (pairs, stats)."""
    p = StampPairer(**kw)
    out = []
    for kind, t, item in events:
        if kind == "info":
            p.add_info(t, item)
        else:
            out += (p.add_color if kind == "c" else p.add_depth)(t, item)
    out += p.flush()
    return out, p.stats()


def test_jittered_tum_like_streams_pair_each_frame_with_its_own_depth():
    rng = np.random.default_rng(0)
    events = []
    for i in range(60):
        t = 10**18 + i * PERIOD
        # depth lags colour by 5-12 ms and both jitter: nearest stamp is the true partner (< half a period)
        events.append(("c", t + int(rng.integers(-3, 4)) * MS, f"c{i}"))
        events.append(("d", t + int(rng.integers(5, 13)) * MS, f"d{i}"))
    pairs, stats = _run(events)
    assert [(p.color, p.depth) for p in pairs] == [(f"c{i}", f"d{i}") for i in range(60)]
    assert all(isinstance(p, Pair) and abs(p.stamp_ns - 10**18 - i * PERIOD) <= 3 * MS for i, p in enumerate(pairs))
    assert stats["pairs"] == 60 and stats["unpaired_color"] == stats["unpaired_depth"] == 0
    assert 5 <= stats["max_offset_ms"] <= 15


def test_a_missing_depth_leaves_its_colour_unpaired_not_mispaired():
    events = []
    for i in range(10):
        t = i * PERIOD
        events.append(("c", t, i))
        if i != 4:
            events.append(("d", t + 2 * MS, i))
    pairs, stats = _run(events)
    assert [(p.color, p.depth) for p in pairs] == [(i, i) for i in range(10) if i != 4]
    assert stats["unpaired_color"] == 1 and stats["unpaired_depth"] == 0


def test_each_message_is_used_once_closest_first():
    # two colours near one depth: the closer one gets it, the other stays unpaired
    pairs, stats = _run([("c", 100 * MS, "a"), ("c", 110 * MS, "b"), ("d", 108 * MS, "x")])
    assert [(p.color, p.depth) for p in pairs] == [("b", "x")]
    assert stats["unpaired_color"] == 1


def test_out_of_order_stamps_still_pair_and_are_counted():
    order = [0, 1, 3, 2, 4, 6, 5, 7]  # a reordering recorder: stamps not monotonic in the bag
    events = []
    for i in order:
        events.append(("c", i * PERIOD, i))
    for i in sorted(order):
        events.append(("d", i * PERIOD + MS, i))
    pairs, stats = _run(events)
    assert sorted((p.color, p.depth) for p in pairs) == [(i, i) for i in range(8)]
    assert stats["out_of_order_color"] == 2


def test_slop_is_respected_and_settable():
    events = [("c", 0, "c"), ("d", 40 * MS, "d")]
    assert _run(events)[0] == []  # 40 ms > the 30 ms default
    pairs, _ = _run(events, slop_s=0.05)
    assert [(p.color, p.depth, p.depth_stamp_ns) for p in pairs] == [("c", "d", 40 * MS)]
    with pytest.raises(ValueError, match="slop"):
        StampPairer(slop_s=-1)


def test_pairs_are_emitted_while_streaming_and_memory_stays_bounded():
    p = StampPairer(max_pending=8)
    emitted = 0
    for i in range(200):
        t = i * PERIOD
        emitted += len(p.add_color(t, i)) + len(p.add_depth(t + MS, i))
        s = p.stats()
        assert s["pending_color"] <= 20 and s["pending_depth"] <= 20  # slop + reorder window, not the whole bag
    assert emitted >= 180  # decided as they come, not at flush
    # a depth stream that stops: colour must not pile up
    for i in range(200, 400):
        p.add_color(i * PERIOD, i)
    assert p.stats()["pending_color"] <= 9
    p.flush()
    assert p.stats()["pairs"] == 200 and p.stats()["unpaired_color"] == 200


def test_camera_info_goes_to_the_pair_nearest_its_stamp():
    events = [("info", 0, "K0"), ("c", 0, 0), ("d", 0, 0), ("info", 10 * PERIOD, "K1"),
              ("c", 10 * PERIOD, 1), ("d", 10 * PERIOD, 1)]
    pairs, stats = _run(events)
    assert [p.info for p in pairs] == ["K0", "K1"] and stats["infos"] == 2


@pytest.mark.parametrize("side", [1, -1])
def test_the_slop_window_is_the_same_on_both_sides(side):
    """A depth stamp exactly `slop` after colour pairs as one exactly `slop` before does (a one-sided
    window paired only one of them); one nanosecond beyond does not, on either side."""
    slop = 30 * MS
    pairs, _ = _run([("c", 10**12, "c"), ("d", 10**12 + side * slop, "d")], slop_s=0.03)
    assert [(p.color, p.depth) for p in pairs] == [("c", "d")]
    pairs, stats = _run([("c", 10**12, "c"), ("d", 10**12 + side * (slop + 1), "d")], slop_s=0.03)
    assert pairs == [] and stats["unpaired_color"] == 1 and stats["unpaired_depth"] == 1


def test_an_extra_depth_frame_is_counted_unpaired():
    events = []
    for i in range(6):
        events.append(("c", i * PERIOD, i))
        events.append(("d", i * PERIOD + MS, i))
    events.append(("d", 6 * PERIOD, "extra"))  # the depth camera ran one frame longer
    pairs, stats = _run(events)
    assert len(pairs) == 6 and stats["unpaired_depth"] == 1 and stats["unpaired_color"] == 0


def test_live_pairs_are_decided_at_once_when_no_later_frame_can_beat_them():
    """Live, in stamp order, with the camera's period known: a colour/depth match 1 ms apart is
    final when the depth arrives (the next frames are >= half a period later), not a frame later."""
    p = StampPairer(slop_s=0.03, reorder_s=0.0)
    p.min_gap_ns = 16_000_000
    t = 1_000_000_000
    assert p.add_color(t, "c0") == []
    pairs = p.add_depth(t + 1_000_000, "d0")
    assert [(x.color, x.depth) for x in pairs] == [("c0", "d0")]
    p2 = StampPairer(slop_s=0.03, reorder_s=0.0)  # period unknown: waits for the next frame, as before
    p2.add_color(t, "c0")
    assert p2.add_depth(t + 1_000_000, "d0") == []
