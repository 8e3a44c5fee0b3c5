"""Decoded, paired RGB-D frames from one recording, streamed: what a segmenter consumes.

`BagFrames(reader, ...)` iterates `Frame`s (rgb uint8 RGB, depth float32 metres with 0 =
invalid, the colour header, intrinsics) in bounded memory: messages are deserialised as they
come, paired by header stamp (`pairing.StampPairer`) and decoded only once paired. A frame whose
bytes cannot be decoded is skipped, counted and named (`stats()`); a stream that can never be
decoded (unknown encoding, colour and depth of different sizes) stops the run with the reason.
A reader error (a damaged file) ends the reading where it strikes: the pairs read before it are
still yielded, and the error, the counts read per topic and how far it got are kept in `log`
(`integrity.ReadLog`) for the report. Camera info that does not fit a frame (another size, an
uncalibrated K) costs that frame its points, counted with the stamp, never the run.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from asymformer.outputs.points import Intrinsics

from .codecs import CorruptFrame, UnsupportedEncoding
from .integrity import ReadLog, describe_error
from .messages import camera_intrinsics, decode_color, decode_depth, stamp_ns
from .pairing import DEFAULT_SLOP_S, Pair, StampPairer

MAX_NAMED = 50  # skipped frames listed by name in the report (all are counted)


@dataclass
class Frame:
    """One colour frame with its depth: stamp_ns / header are the colour frame's."""

    index: int
    stamp_ns: int
    header: Any
    rgb: np.ndarray
    depth_m: np.ndarray
    intrinsics: Intrinsics | None
    depth_stamp_ns: int = 0


class BagFrames:
    """Iterate the paired, decoded frames of an open AnyReader (see `bags.open_bag`).

    intrinsics: fixed intrinsics (`--intrinsics`), used instead of the camera-info topic.
    copy: called as copy(topic, msgtype, t_ns, cdr_bytes) for every message read from the three
    topics (ROS 1 messages converted to CDR), so they can be copied into the output bag.
    types: {topic: msgtype} for topics that carry several types (only that type's messages are read).
    """

    def __init__(self, reader, bag, rgb_topic: str, depth_topic: str, info_topic: str | None = None,
                 intrinsics: Intrinsics | None = None, slop_s: float = DEFAULT_SLOP_S,
                 copy: Callable[[str, str, int, Any], None] | None = None, types: dict[str, str] | None = None):
        self.reader, self.bag = reader, bag
        self.rgb_topic, self.depth_topic, self.info_topic = rgb_topic, depth_topic, info_topic
        self.intrinsics = intrinsics
        self.pairer = StampPairer(slop_s)
        self.copy = copy
        self.types = dict(types or {})
        self.log = ReadLog()
        self.skipped = Counter()
        self.skipped_frames: list[dict] = []
        self.no_intrinsics = Counter()
        self.no_intrinsics_frames: list[dict] = []
        self.copy_failed = 0
        self.decoded = 0
        self._checked = False
        self._lock = threading.Lock()

    # --------------------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Frame]:
        """Decoded frames in order, one thread (the pipeline decodes `pairs()` in a pool instead)."""
        for i, pair in enumerate(self.pairs()):
            frame = self.decode(pair, i)
            if frame is not None:
                yield frame

    def connections(self) -> list:
        """The connections read: the chosen topics, of the chosen type where a topic has several."""
        from .bags import normalize_type

        wanted = {self.rgb_topic, self.depth_topic} | ({self.info_topic} if self.info_topic else set())
        return [c for c in self.reader.connections if c.topic in wanted
                and (c.topic not in self.types or normalize_type(c.msgtype) == self.types[c.topic])]

    def declared(self) -> dict[str, int]:
        """Messages per chosen topic as the file declares them (metadata.yaml, MCAP summary, index)."""
        out: dict[str, int] = {}
        for c in self.connections():
            out[c.topic] = out.get(c.topic, 0) + int(c.msgcount or 0)
        return out

    def pairs(self) -> Iterator[Pair]:
        """Paired messages, not yet decoded (deserialised, so their stamps are known). A reader
        error ends the reading (kept in `log.error`); the pairs read so far are still yielded."""
        messages = iter(self.reader.messages(connections=self.connections()))
        while True:
            try:
                conn, t_ns, raw = next(messages)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - rosbags, zstd, bz2, lz4, sqlite3 and struct errors alike
                self.log.error = describe_error(exc)
                break
            self.log.note(conn.topic, t_ns)
            if self.copy is not None:
                self._copy(conn, t_ns, raw)
            msg = self._deserialize(conn, t_ns, raw)
            if msg is None:
                continue
            if conn.topic == self.info_topic:
                self.pairer.add_info(stamp_ns(msg), msg)
                continue
            kind = "color" if conn.topic == self.rgb_topic else "depth"
            self.log.stamp(kind, stamp_ns(msg))
            add = self.pairer.add_color if kind == "color" else self.pairer.add_depth
            yield from add(stamp_ns(msg), msg)
        yield from self.pairer.flush()

    def _copy(self, conn, t_ns: int, raw) -> None:
        from .bags import normalize_type, ros2_typestore

        msgtype = normalize_type(conn.msgtype)
        if not self.reader.is2:
            try:
                raw = ros2_typestore().ros1_to_cdr(raw, msgtype)
            except Exception:  # noqa: BLE001 - rosbags raises several types; the copy is best effort, counted
                self.copy_failed += 1
                return
        self.copy(conn.topic, msgtype, t_ns, raw)

    def _deserialize(self, conn, t_ns: int, raw):
        from .bags import normalize_type

        msgtype = conn.msgtype if conn.msgtype in self.reader.typestore.fielddefs else normalize_type(conn.msgtype)
        try:
            return self.reader.deserialize(raw, msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags' AnyReaderError and struct errors: a corrupt message
            self._skip(conn.topic, t_ns, f"cannot deserialise {conn.msgtype}: {exc}", "corrupt message")
            return None

    def _skip(self, topic: str, stamp: int, reason: str, kind: str) -> None:
        with self._lock:
            self.skipped[kind] += 1
            if len(self.skipped_frames) < MAX_NAMED:
                self.skipped_frames.append({"topic": topic, "stamp_ns": int(stamp), "reason": reason})

    def decode(self, pair: Pair, index: int = 0) -> Frame | None:
        """A pair -> Frame, or None when a message cannot be decoded (skipped, counted, named).
        Thread-safe: the pipeline decodes several pairs at once."""
        try:
            rgb = decode_color(pair.color)
        except CorruptFrame as exc:
            return self._skip(self.rgb_topic, pair.stamp_ns, str(exc), "corrupt colour frame")
        except UnsupportedEncoding as exc:
            raise ValueError(f"{self.bag}: --rgb-topic {self.rgb_topic}: {exc}") from None
        try:
            depth = decode_depth(pair.depth)
        except CorruptFrame as exc:
            return self._skip(self.depth_topic, pair.depth_stamp_ns, str(exc), "corrupt depth frame")
        except UnsupportedEncoding as exc:
            raise ValueError(f"{self.bag}: --depth-topic {self.depth_topic}: {exc}") from None
        if rgb.shape[:2] != depth.shape:
            raise ValueError(
                f"{self.bag}: colour {self.rgb_topic} is {rgb.shape[1]}x{rgb.shape[0]} but depth {self.depth_topic} "
                f"is {depth.shape[1]}x{depth.shape[0]}: depth must be registered to the colour image pixel for pixel, "
                "and resampling it here would give wrong points; record the driver's aligned depth instead "
                "(realsense2_camera: align_depth.enable:=true, topic /camera/camera/aligned_depth_to_color/image_raw)")
        intr = self._intrinsics(pair, rgb.shape[:2])
        with self._lock:
            self.decoded += 1
        return Frame(index, pair.stamp_ns, pair.color.header, rgb, depth, intr, pair.depth_stamp_ns)

    def _intrinsics(self, pair: Pair, hw) -> Intrinsics | None:
        """The frame's intrinsics, or None (no points for it, counted with its stamp) when the camera
        info is missing, uncalibrated or for another image size (a stream that changed resolution).
        Fixed --intrinsics that do not fit the first frame are the user's mistake: refused."""
        intr = self.intrinsics
        if intr is None and self.info_topic:
            if pair.info is None:
                return self._no_points(pair, f"no message on {self.info_topic} yet")
            try:
                intr = camera_intrinsics(pair.info)
            except ValueError as exc:
                return self._no_points(pair, f"{self.info_topic}: {exc}")
        if intr is None:
            return None
        source = "--intrinsics" if self.intrinsics is not None else self.info_topic
        try:
            intr.check(hw[0], hw[1], f"colour image on {self.rgb_topic}")
        except ValueError as exc:
            if self.intrinsics is not None and not self._checked:
                raise ValueError(f"{self.bag}: {source}: {exc}") from None
            size = f"{intr.width}x{intr.height}" if intr.width else "another size"
            return self._no_points(pair, f"{source} is for {size} images, the frame is {hw[1]}x{hw[0]}")
        self._checked = True
        return intr

    def _no_points(self, pair: Pair, reason: str) -> None:
        with self._lock:
            self.no_intrinsics[reason] += 1
            if len(self.no_intrinsics_frames) < MAX_NAMED:
                self.no_intrinsics_frames.append({"topic": self.rgb_topic, "stamp_ns": int(pair.stamp_ns),
                                                  "reason": reason})
        return None

    def stats(self) -> dict:
        s = self.pairer.stats()
        return {"pairs": s["pairs"], "decoded": self.decoded, "colour_messages": s["color"],
                "depth_messages": s["depth"], "camera_info_messages": s["infos"],
                "unpaired_color": s["unpaired_color"], "unpaired_depth": s["unpaired_depth"],
                "out_of_order_stamps": s["out_of_order_color"] + s["out_of_order_depth"],
                "max_stamp_offset_ms": s["max_offset_ms"], "slop_ms": s["slop_ms"],
                "skipped": sum(self.skipped.values()), "skipped_by_reason": dict(self.skipped),
                # in stamp order: the pipeline decodes several pairs at once, so they are noted in any order
                "skipped_frames": sorted(self.skipped_frames, key=_stamp),
                "frames_without_intrinsics": dict(self.no_intrinsics),
                "frames_without_points": sorted(self.no_intrinsics_frames, key=_stamp),
                "copy_failed": self.copy_failed}


def _stamp(entry: dict) -> int:
    return entry["stamp_ns"]
