"""Damaged and oddly timed recordings: what the file declares against what could be read, and why
a run produced nothing, as one line a user can act on.

Recordings from robots are often damaged (a power cut mid-write, a disk error, a copy cut short).
rosbags checks an MCAP chunk's CRC when the writer set one, but a chunk without one (rosbags'
own writer) can lose its tail silently: a garbled record length ends the chunk early. Every
format declares how many messages each topic holds (metadata.yaml for a rosbag2 folder, the MCAP
summary statistics or chunk indexes for a bare .mcap, the index's connection counts for a ROS 1
.bag, the rows of a .db3), and rosbags hands those counts over as `Connection.msgcount`: reading
fewer than declared is a loss, however quiet the reader was about it. A reader error mid-file
(a CRC mismatch, zstd / bz2 / lz4 data that does not decompress, a bad record) ends the reading
there; what was read before it is kept. Both make the recording a failed one, whose readable
part is still written.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

# more colour/depth stamps than this are not kept for the zero-pairs diagnosis (memory stays flat)
_STAMPS_KEPT = 4096


def declared_by(path) -> str:
    """Which part of the recording declares its message counts (for the messages that name it)."""
    p = Path(path)
    if p.is_dir():
        return "metadata.yaml"
    return {".mcap": "the MCAP summary", ".bag": "the bag's index", ".db3": "the .db3 file"}.get(p.suffix, "the file")


def repair_hint(path) -> str:
    """The tool that rebuilds a damaged recording of this format, as the end of a sentence."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.mcap")) or sorted(p.glob("*.db3"))
        inner = files[0] if files else None
        if inner is not None and inner.suffix == ".mcap":
            return (f"repair it with `mcap recover {inner} -o fixed.mcap` (move fixed.mcap in its place), then "
                    f"`ros2 bag reindex {p}`")
        if inner is not None:
            return f"{repair_hint(inner)}, then `ros2 bag reindex {p}`"
        return f"repair it with `ros2 bag reindex {p}` (rebuilds metadata.yaml from the storage files)"
    if p.suffix == ".mcap":
        return f"repair it with `mcap recover {p} -o {p.with_name(p.stem + '-recovered.mcap')}`"
    if p.suffix == ".bag":
        return f"repair it with `rosbag reindex {p}` (ROS 1), or `rosbag fix` for an unindexed bag"
    if p.suffix == ".db3":
        return f"salvage it with `sqlite3 {p} .recover | sqlite3 {p.with_name(p.stem + '-recovered.db3')}`"
    return "re-record or repair it"


def describe_error(exc: BaseException) -> str:
    """A reader's exception as a short phrase: rosbags' own messages as they are, anything else
    (zstd, bz2, lz4, sqlite3, a struct or overflow error from a garbled record) with its kind."""
    text = " ".join(str(exc).split()).rstrip(".") or "no details"
    kind = type(exc).__name__
    if kind in ("ReaderError", "AnyReaderError"):
        return text
    if kind in ("OverflowError", "error", "IndexError", "KeyError", "UnicodeDecodeError"):
        return f"a garbled record ({kind}: {text})"
    if isinstance(exc, OSError) and exc.errno is None:  # bz2 / lz4 say "Invalid data stream" as an OSError
        return f"compressed data that does not decompress ({text})"
    return f"{kind}: {text}"


class ReadLog:
    """What was read from the chosen topics: counts per topic, how far the reading got, the
    reader error that ended it, and a bounded sample of colour and depth header stamps."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.error: str | None = None
        self.stamps: dict[str, list[int]] = {"color": [], "depth": []}

    def note(self, topic: str, t_ns: int) -> None:
        self.counts[topic] += 1
        self.first_ns = t_ns if self.first_ns is None else min(self.first_ns, t_ns)
        self.last_ns = t_ns if self.last_ns is None else max(self.last_ns, t_ns)

    def stamp(self, kind: str, stamp_ns: int) -> None:
        if len(self.stamps[kind]) < _STAMPS_KEPT:
            self.stamps[kind].append(int(stamp_ns))

    def where(self) -> str:
        """'after 12 messages, 0.396 s into the recording'."""
        n = sum(self.counts.values())
        if self.first_ns is None:
            return "before the first message"
        return f"after {n} messages, {(self.last_ns - self.first_ns) / 1e9:.3f} s into the recording"


def compare(declared: dict[str, int], read: dict[str, int]) -> dict:
    """Per topic: what the file declares, what was read, how many are missing (lost) or more than
    declared (an out-of-date metadata.yaml: not a loss)."""
    lost = {t: declared[t] - read.get(t, 0) for t in declared if read.get(t, 0) < declared[t]}
    extra = {t: read[t] - declared.get(t, 0) for t in read if read[t] > declared.get(t, 0)}
    return {"declared": dict(declared), "read": {t: read.get(t, 0) for t in declared}, "lost": lost, "extra": extra}


def storage_counts(reader, connections) -> dict[str, int] | None:
    """For a rosbag2 folder: messages per topic as its storage files (.mcap summary, .db3 rows)
    declare them, next to metadata.yaml's; None for a bare file. metadata.yaml is written by the
    recorder at the end (or by hand): where the two disagree, the storage file's own count is
    the one that says whether messages were lost."""
    wanted = {(c.topic, c.msgtype) for c in connections}
    out: dict[str, int] = {c.topic: 0 for c in connections}
    found = False
    for r in getattr(reader, "readers", ()):
        for storage in getattr(getattr(r, "storage", None), "storages", ()):
            found = True
            for c in storage.connections:
                if (c.topic, c.msgtype) in wanted:
                    out[c.topic] += int(c.msgcount or 0)
    return out if found else None


def integrity_report(bag, declared: dict[str, int], log: ReadLog, inner: dict[str, int] | None = None) -> dict:
    """The report's "integrity" entry: declared vs read, the reader error and where it struck.
    inner: a folder's storage-file counts (`storage_counts`); where metadata.yaml disagrees with
    them, they decide what was lost and the disagreement is noted (`metadata_mismatch`)."""
    read = dict(log.counts)
    rep = {"declared_by": declared_by(bag), **compare(declared, read), "read_error": log.error,
           "read_until": log.where() if log.error else None, "metadata_mismatch": {}}
    if inner is not None and inner != declared:
        storage = compare(inner, read)
        name = next((f.name for f in sorted(Path(bag).iterdir()) if f.suffix in (".mcap", ".db3")), "the storage file")
        rep.update(declared_by=name, declared=storage["declared"], lost=storage["lost"], extra=storage["extra"],
                   metadata_mismatch={t: [declared.get(t, 0), inner.get(t, 0)]
                                      for t in {*declared, *inner} if declared.get(t, 0) != inner.get(t, 0)})
    return rep


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def damage_problem(bag, integrity: dict, frames: int) -> str | None:
    """One line for a recording that lost messages or could not be read to its end, else None."""
    lost, error = integrity["lost"], integrity["read_error"]
    if not lost and not error:
        return None
    parts = []
    if error:
        parts.append(f"the recording is damaged: {error}, {integrity['read_until']}")
    if lost:
        declared = integrity["declared"]
        listed = ", ".join(f"{t} {declared[t] - n} of {declared[t]}" for t, n in lost.items())
        parts.append(f"{_n(sum(lost.values()), 'message')} {integrity['declared_by']} declares could not be read "
                     f"(read: {listed})")
    kept = f"the {_n(frames, 'frame')} read before the damage were written" if frames else "no frame could be kept"
    return f"{'; '.join(parts)}; {kept}; {repair_hint(bag)}"


def count_warnings(integrity: dict) -> list[str]:
    """Declarations that do not match the data, when nothing was lost: a hand-edited or stale
    metadata.yaml, a summary that counts fewer than the file holds. The run trusts what it read."""
    out = []
    mismatch = integrity.get("metadata_mismatch") or {}
    if mismatch:
        listed = ", ".join(f"{t}: {a} in metadata.yaml, {b} in {integrity['declared_by']}"
                           for t, (a, b) in sorted(mismatch.items()))
        out.append(f"metadata.yaml does not match the recording ({listed}); the storage file's counts were "
                   "checked instead (`ros2 bag reindex` rewrites metadata.yaml from the storage files)")
    extra = integrity["extra"]
    if extra:
        listed = ", ".join(f"{t} declares {integrity['declared'].get(t, 0)} but holds {integrity['read'].get(t, 0)}"
                           for t in extra)
        out.append(f"{integrity['declared_by']} does not match the data ({listed}); all messages read were used")
    return out


def stamp_warnings(log: ReadLog, topics: dict[str, str]) -> list[str]:
    """All-zero header stamps: the driver does not stamp its messages; pairing and --realtime
    take header stamps as capture times, so colour and depth pair arbitrarily."""
    out = []
    for kind, stamps in log.stamps.items():
        if len(stamps) > 1 and not any(stamps):
            out.append(f"every header stamp on {topics[kind]} is 0 (the driver does not stamp its messages): "
                       "frames are paired and timed by header stamp, so colour and depth pair arbitrarily; "
                       "record with a driver that stamps its images")
    return out


def median_offset_ns(color: list[int], depth: list[int]) -> int | None:
    """How far apart the two cameras' clocks are when nothing pairs: median depth stamp minus
    median colour stamp (positive: depth later). Exact for a constant offset between two streams
    of one rate, whatever its size (nearest-stamp differences are not, beyond a frame period)."""
    if not color or not depth:
        return None
    return int(statistics.median(depth) - statistics.median(color))


def zero_frames_cause(stats: dict, log: ReadLog, topics: dict[str, str], max_slop_s: float = 10.0) -> str:
    """Why a run produced no frame, with the fix that can help and only that."""
    colour, depth = stats["colour_messages"], stats["depth_messages"]
    if colour == 0 or depth == 0:
        empty = [f"--{k}-topic {topics[key]}" for k, key, n in (("rgb", "color", colour), ("depth", "depth", depth))
                 if n == 0]
        return f"no messages were read on {' and '.join(empty)}; check the topics (and the damage, if any)"
    if stats["pairs"] == 0:
        off = median_offset_ns(log.stamps["color"], log.stamps["depth"])
        slop = stats["slop_ms"] / 1000
        text = f"none of {colour} colour and {depth} depth messages pair within --slop {slop:g} s"
        if off is None:
            return text
        side = "after" if off > 0 else "before"
        text += f": depth is stamped a median {abs(off) / 1e6:.1f} ms {side} colour"
        need = abs(off) / 1e9 * 1.02 + 0.005
        if need <= max_slop_s:
            return text + (f" (the two cameras' clocks are apart); --slop {need:.3f} would pair them, if that offset "
                           "is real and constant")
        return text + (f", beyond what --slop can bridge ({max_slop_s:g} s): the two topics are stamped by "
                       "different clocks; re-stamp one of them or record both from one driver")
    if stats["decoded"] == 0 and stats["skipped"]:
        first = stats["skipped_frames"][0] if stats["skipped_frames"] else {}
        reasons = ", ".join(f"{k}: {v}" for k, v in stats["skipped_by_reason"].items())
        detail = f" (first: {first['topic']} at stamp {first['stamp_ns']}: {first['reason']})" if first else ""
        return f"all {stats['pairs']} pairs were found but none could be decoded ({reasons}){detail}"
    return f"no frame was segmented ({stats['pairs']} pairs, {stats['decoded']} decoded)"
