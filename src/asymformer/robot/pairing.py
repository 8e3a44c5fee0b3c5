"""Pairing colour with depth (and camera info) by header stamp, streaming, in bounded memory.

Cameras stamp colour and depth separately; unsynchronised ones (Kinect v1 / TUM RGB-D) differ by
up to a few tens of milliseconds, and bags store messages by arrival, not by stamp. The rule,
shared by the bag tool and a live node: a colour frame pairs with the depth frame nearest in
header stamp if they differ by at most `slop_s`; each message is used at most once (closest
pairs first); what stays unpaired is counted, never mis-paired.

Streaming: a message is decided once every stream has moved `slop_s + reorder_s` past its stamp
(stamps may arrive out of order by up to `reorder_s`), or when a buffer exceeds `max_pending`
(a stream that stopped must not make memory grow). `flush()` decides the rest at the end.
A live node, whose messages arrive in stamp order, passes `reorder_s=0`: a pair is then decided
as soon as both streams are `slop_s` past it (bags keep the default: recorders reorder).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

# TUM / Kinect v1 colour and depth stamps differ by up to a few tens of ms; 30 ms stays under one
# 30 Hz frame period (33 ms), and closest-first matching keeps neighbours from stealing partners.
DEFAULT_SLOP_S = 0.03


@dataclass
class Pair:
    """A colour frame and its depth frame; stamp_ns is the colour stamp (what outputs carry)."""

    stamp_ns: int
    color: Any
    depth: Any
    info: Any = None
    depth_stamp_ns: int = 0


class StampPairer:
    """Streaming nearest-stamp pairing: `add_color` / `add_depth` return the pairs now decided."""

    def __init__(self, slop_s: float = DEFAULT_SLOP_S, reorder_s: float = 0.5, max_pending: int = 64):
        if not 0 <= slop_s < math.inf:
            raise ValueError(f"slop must be a finite number >= 0 seconds, got {slop_s}")
        if not 0 <= reorder_s < math.inf or max_pending < 1:
            raise ValueError(f"reorder_s must be >= 0 and max_pending >= 1, got {reorder_s}, {max_pending}")
        self.slop_ns = int(round(slop_s * 1e9))
        self.delay_ns = self.slop_ns + int(round(reorder_s * 1e9))
        self.max_pending = max_pending
        # live (reorder_s=0): each stream's next stamp is at least this far past its latest (half the
        # camera's period, set by the node once measured); a match that no such message can beat is
        # decided at once instead of a frame later (a frame period of latency saved)
        self.min_gap_ns: int | None = None
        self._color: list[tuple[int, Any]] = []
        self._depth: list[tuple[int, Any]] = []
        self._infos: deque[tuple[int, Any]] = deque(maxlen=16)
        self._latest = {"color": None, "depth": None}
        self._counts = dict(pairs=0, unpaired_color=0, unpaired_depth=0, out_of_order_color=0,
                            out_of_order_depth=0, color=0, depth=0, infos=0)
        self._max_offset_ns = 0

    # ----------------------------------------------------------------------------------------- input
    def add_color(self, stamp_ns: int, item) -> list[Pair]:
        return self._add("color", self._color, stamp_ns, item)

    def add_depth(self, stamp_ns: int, item) -> list[Pair]:
        return self._add("depth", self._depth, stamp_ns, item)

    def add_info(self, stamp_ns: int, info) -> None:
        """Camera info: each pair gets the one nearest its colour stamp (usually identical)."""
        self._counts["infos"] += 1
        self._infos.append((int(stamp_ns), info))

    def _add(self, kind: str, buf: list, stamp_ns: int, item) -> list[Pair]:
        stamp_ns = int(stamp_ns)
        self._counts[kind] += 1
        latest = self._latest[kind]
        if latest is not None and stamp_ns < latest:
            self._counts[f"out_of_order_{kind}"] += 1
        self._latest[kind] = stamp_ns if latest is None else max(latest, stamp_ns)
        buf.append((stamp_ns, item))
        return self._decide(final=False)

    def flush(self) -> list[Pair]:
        """Decide everything still buffered (end of the recording)."""
        return self._decide(final=True)

    # -------------------------------------------------------------------------------------- matching
    def _horizon(self, final: bool) -> float:
        if final:
            return float("inf")
        if self._latest["color"] is None or self._latest["depth"] is None:
            return float("-inf")
        return min(self._latest["color"], self._latest["depth"]) - self.delay_ns

    def _decide(self, final: bool) -> list[Pair]:
        horizon = self._horizon(final)
        # a stream that stopped (or never started) must not grow the other's buffer without bound
        for buf in (self._color, self._depth):
            if len(buf) > self.max_pending:
                buf.sort(key=lambda e: e[0])
                horizon = max(horizon, buf[len(buf) - self.max_pending - 1][0])
        if horizon == float("-inf"):
            return []
        matches = self._greedy()
        pairs, used_c, used_d = [], set(), set()
        for ci, di in matches:
            tc, td = self._color[ci][0], self._depth[di][0]
            if min(tc, td) <= horizon or self._final(tc, td):  # no future message can change this match
                used_c.add(ci)
                used_d.add(di)
                pairs.append(Pair(tc, self._color[ci][1], self._depth[di][1], self._info_for(tc), td))
                self._max_offset_ns = max(self._max_offset_ns, abs(tc - td))
        matched_c = {ci for ci, _ in matches}
        matched_d = {di for _, di in matches}
        # unmatched and old enough that no future partner can come within slop: unpaired
        drop_c = {i for i, e in enumerate(self._color) if i not in matched_c and e[0] <= horizon}
        drop_d = {i for i, e in enumerate(self._depth) if i not in matched_d and e[0] <= horizon}
        self._counts["unpaired_color"] += len(drop_c)
        self._counts["unpaired_depth"] += len(drop_d)
        self._color = [e for i, e in enumerate(self._color) if i not in used_c and i not in drop_c]
        self._depth = [e for i, e in enumerate(self._depth) if i not in used_d and i not in drop_d]
        self._counts["pairs"] += len(pairs)
        pairs.sort(key=lambda p: p.stamp_ns)
        return pairs

    def _final(self, tc: int, td: int) -> bool:
        """In stamp order with a known minimum gap: could a later depth be nearer tc, or a later
        colour nearer td? If neither, the match is final now."""
        if self.min_gap_ns is None or self.delay_ns != self.slop_ns:
            return False
        d = abs(tc - td)
        next_d = self._latest["depth"] + self.min_gap_ns
        next_c = self._latest["color"] + self.min_gap_ns
        return d <= next_d - tc and d <= next_c - td

    def _greedy(self) -> list[tuple[int, int]]:
        """Closest stamps first, each message once, within slop (over the whole buffer)."""
        cands = []
        depth = sorted(range(len(self._depth)), key=lambda i: self._depth[i][0])
        stamps = [self._depth[i][0] for i in depth]
        for ci, (tc, _) in enumerate(self._color):
            lo = bisect.bisect_left(stamps, tc - self.slop_ns)
            hi = bisect.bisect_right(stamps, tc + self.slop_ns)
            cands += [(abs(tc - stamps[j]), tc, ci, depth[j]) for j in range(lo, hi)]
        cands.sort(key=lambda c: (c[0], c[1]))
        used_c, used_d, out = set(), set(), []
        for _, _, ci, di in cands:
            if ci not in used_c and di not in used_d:
                used_c.add(ci)
                used_d.add(di)
                out.append((ci, di))
        return out

    def _info_for(self, stamp: int):
        if not self._infos:
            return None
        return min(self._infos, key=lambda e: abs(e[0] - stamp))[1]

    def stats(self) -> dict:
        """Counters: pairs, unpaired_color / unpaired_depth (decided without a partner), messages
        received per stream, out-of-order stamps per stream, pending (still buffered),
        max_offset_ms (largest colour-depth stamp difference among the pairs)."""
        return {**self._counts, "pending_color": len(self._color), "pending_depth": len(self._depth),
                "slop_ms": self.slop_ns / 1e6, "max_offset_ms": round(self._max_offset_ns / 1e6, 3)}
