"""Every frame the live node sees is counted, and the node's health is judged from the counts.

A user who sees 46 label maps for 300 camera frames must be able to tell where the other 254
went: dropped by the node (and why), or lost before the node saw them (DDS, a slow executor,
the camera). `FrameCounts` keeps the counters and rates; `StampGaps` estimates the frames lost
upstream from gaps in the camera's stamps against its measured period; `health` turns a snapshot
into the level and reason a /diagnostics monitor shows; `closing_line` is what Ctrl-C prints.
All on the node's clock (the ROS clock: simulated time follows /clock), without ROS.
"""

from __future__ import annotations

import threading
from collections import deque

# why a colour frame that reached the node produced no output
DROP_REASONS = ("stale", "warming up", "unpaired", "bad frame", "inactive", "failed")
OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


class StampGaps:
    """Frames lost before the node, from the gaps in one stream's header stamps.

    The period is the median of the last 31 stamp differences (a camera's own rate, robust to
    the gaps themselves); a gap of k periods (rounded) means k - 1 frames never arrived. Stamps
    that go backwards (a bag looping, a camera restart) reset the estimate instead of counting.
    """

    def __init__(self, history: int = 31):
        self._diffs: deque[int] = deque(maxlen=history)
        self._last: int | None = None
        self.lost = 0

    @property
    def period_ns(self) -> int | None:
        if len(self._diffs) < 3:
            return None
        return sorted(self._diffs)[len(self._diffs) // 2]

    def add(self, stamp_ns: int) -> int:
        """Record one stamp; returns the frames estimated lost just before it."""
        last, self._last = self._last, int(stamp_ns)
        if last is None or stamp_ns <= last:
            if last is not None and stamp_ns < last:
                self._diffs.clear()
            return 0
        diff = stamp_ns - last
        period = self.period_ns
        lost = 0
        if period and diff > 1.5 * period:
            lost = int(round(diff / period)) - 1
            self.lost += lost
        else:
            self._diffs.append(diff)
        return lost


class RateMeter:
    """Events per second over the last `window_s` seconds of a clock (ns)."""

    def __init__(self, window_s: float = 2.0):
        self.window_ns = int(window_s * 1e9)
        self._times: deque[int] = deque()
        self.last_ns: int | None = None

    def add(self, now_ns: int) -> None:
        self._times.append(now_ns)
        self.last_ns = now_ns
        self._trim(now_ns)

    def rate(self, now_ns: int) -> float:
        self._trim(now_ns)
        if not self._times:
            return 0.0
        return len(self._times) / (self.window_ns / 1e9)

    def _trim(self, now_ns: int) -> None:
        while self._times and (now_ns - self._times[0] > self.window_ns or self._times[0] > now_ns):
            self._times.popleft()


class FrameCounts:
    """Thread-safe counters: colour frames received, dropped by reason, inputs' rates and the
    frames lost upstream. `processed` comes from the runtime (results delivered)."""

    INPUTS = ("color", "depth", "info")

    def __init__(self, clock, rate_window_s: float = 2.0):
        self.clock = clock
        self._lock = threading.Lock()
        self.received = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.gaps = StampGaps()
        self.rates = {k: RateMeter(rate_window_s) for k in (*self.INPUTS, "output")}
        self.started_ns = clock()

    def seen(self, kind: str, stamp_ns: int | None = None) -> None:
        """A message on input `kind` (colour frames also count as received, with their stamp)."""
        with self._lock:
            self.rates[kind].add(self.clock())
            if kind == "color":
                self.received += 1
                if stamp_ns is not None:
                    self.gaps.add(stamp_ns)

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n

    def output(self) -> None:
        with self._lock:
            self.rates["output"].add(self.clock())

    def snapshot(self) -> dict:
        now = self.clock()
        with self._lock:
            last = {k: self.rates[k].last_ns for k in self.INPUTS}
            return {"received": self.received, "dropped_by_reason": dict(self.dropped),
                    "lost_upstream": self.gaps.lost,
                    "rates": {k: round(m.rate(now), 2) for k, m in self.rates.items()},
                    "quiet_s": {k: round((now - (t if t is not None else self.started_ns)) / 1e9, 3)
                                for k, t in last.items()},
                    "period_ms": None if self.gaps.period_ns is None else round(self.gaps.period_ns / 1e6, 3)}


def health(stats: dict, stall_after_s: float, need_info: bool, warming: bool) -> tuple[int, str]:
    """(level, reason) for /diagnostics from `LiveSegmentation.stats()`: ERROR when the inputs
    stalled or the model failed, WARN when falling behind or points lack camera info, else OK."""
    quiet, rates = stats["quiet_s"], stats["rates"]
    if stats.get("failed"):
        return ERROR, "segmentation failed: see the node's log"
    if quiet["color"] >= stall_after_s and quiet["depth"] >= stall_after_s:
        return ERROR, f"stalled input: no colour or depth for {min(quiet['color'], quiet['depth']):.1f} s"
    if quiet["color"] >= stall_after_s:
        return ERROR, f"stalled input: no colour for {quiet['color']:.1f} s"
    if quiet["depth"] >= stall_after_s:
        return ERROR, f"stalled input: no depth for {quiet['depth']:.1f} s"
    if warming:
        return OK, "warming up the model"
    if need_info and quiet["info"] >= stall_after_s:
        return WARN, "no camera info: points are not published"
    if rates["color"] > 0 and rates["output"] < 0.5 * rates["color"]:
        return WARN, (f"falling behind: {rates['output']:.1f} results/s for {rates['color']:.1f} colour "
                      f"frames/s (frames are dropped as stale)")
    return OK, "running"


def diagnostic_values(stats: dict) -> list[tuple[str, str]]:
    """The key/value pairs of the node's DiagnosticStatus (strings, as diagnostic_msgs wants)."""
    r = stats["rates"]
    vals = [("colour rate (Hz)", r["color"]), ("depth rate (Hz)", r["depth"]), ("camera info rate (Hz)", r["info"]),
            ("output rate (Hz)", r["output"]), ("received", stats["received"]), ("processed", stats["processed"]),
            ("dropped", stats["dropped_total"])]
    vals += [(f"dropped: {k}", v) for k, v in stats["dropped_by_reason"].items()]
    vals += [("lost upstream", stats["lost_upstream"]), ("latency p50 (ms)", stats.get("latency_p50_ms")),
             ("latency p99 (ms)", stats.get("latency_p99_ms")), ("model (ms)", stats.get("model_ms")),
             ("model p99 (ms)", stats.get("model_p99_ms")), ("pre-processing (ms)", stats.get("pre_ms")),
             ("post-processing (ms)", stats.get("post_ms")),
             ("latency minus model, p99 (ms)", stats.get("overhead_p99_ms")),
             ("warm-up (s)", stats.get("warm_up_s"))]
    return [(k, "" if v is None else str(v)) for k, v in vals]


def closing_line(stats: dict) -> str:
    """What the node prints when it stops: every frame accounted for, and the latency."""
    reasons = ", ".join(f"{k} {v}" for k, v in stats["dropped_by_reason"].items() if v) or "none"
    return (f"received {stats['received']}, processed {stats['processed']}, dropped {stats['dropped_total']} "
            f"({reasons}), lost upstream {stats['lost_upstream']}, latency p50 {_ms(stats.get('latency_p50_ms'))}, "
            f"p99 {_ms(stats.get('latency_p99_ms'))}")


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"
