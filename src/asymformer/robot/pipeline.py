"""Recording in, labelled recording out: reading, decoding, inference, encoding and writing overlap.

Stages joined by small bounded queues, so memory stays flat however long the recording:

    BagFrames.pairs (read thread) -> BagFrames.decode (pool) -> segment (caller's thread)
        -> ResultWriter.encode (pool) -> ResultWriter.write_encoded (writer thread)

Decoding (JPEG/PNG) and encoding (overlay, point cloud, CDR) run in numpy / Pillow with the GIL
released, in a small pool, so they hide behind the model even when it is fast (a GPU);
writing stays in one thread, in order. `run_pipeline` is the transport-free core: a streaming
runtime (`--realtime`) can replace `segment` with its own submit/result loop and reuse the
reading (`BagFrames.pairs` / `decode`, or iterate `BagFrames` for decoded frames) and the
writing (`ResultWriter.write(frame, seg)`, or `encode` + `write_encoded`).
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .bags import BagWriter, check_out_apart, check_topics, choose_types, describe_topics, list_topics, open_bag
from .frames import BagFrames, Frame
from .integrity import (
    count_warnings,
    damage_problem,
    integrity_report,
    stamp_warnings,
    storage_counts,
    zero_frames_cause,
)
from .messages import (
    OUTPUTS,
    MessageTypes,
    class_info_message,
    label_info_message,
    needs_confidence,
    output_messages,
)
from .pairing import DEFAULT_SLOP_S

_DONE = object()
_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Stopped(Exception):
    """Another stage failed or the run was interrupted."""


def topic_prefix(namespace: str) -> str:
    """'/asymformer' from '/asymformer', 'asymformer/' ...; '' for the root. A name ROS cannot use
    ('my seg', '2d', 'a//b') is refused here: rosbags would write it, but ros2 bag play, rviz2 and
    rclpy refuse such topics, so the bag would be unplayable."""
    ns = namespace.strip("/")
    if ns and not all(_NAME_TOKEN.fullmatch(t) for t in ns.split("/")):
        raise ValueError(f"--namespace {namespace!r} is not a valid ROS topic namespace: use letters, digits and "
                         "underscores between slashes, not starting with a digit (e.g. /asymformer or /robot1/seg)")
    return "/" + ns if ns else ""


class ResultWriter:
    """(frame, segmentation) -> messages under `namespace` in a BagWriter: labels, confidence,
    overlay, points (for frames with intrinsics), plus the class names/colours once.

    `encode(frame, seg)` builds and serialises the messages (numpy and CDR: thread-safe, run in a
    pool); `write_encoded(...)` writes them (one writer thread, in order); `write` does both.
    """

    def __init__(self, bag: BagWriter, class_names, colors, namespace: str = "/asymformer", outputs=OUTPUTS,
                 alpha: float = 0.5, max_depth: float | None = None, confidence_encoding: str = "32FC1"):
        from .bags import ros2_typestore

        self.bag, self.names, self.colors = bag, class_names, colors
        self.ns = topic_prefix(namespace)
        self.outputs, self.alpha, self.max_depth = tuple(outputs), alpha, max_depth
        self.confidence_encoding = confidence_encoding
        self.typestore = ros2_typestore()
        self.types = MessageTypes.from_typestore(self.typestore)
        self.frames = 0
        self.points_skipped = 0

    def topic(self, key: str) -> str:
        return f"{self.ns}/{key}"

    def encode(self, frame: Frame, seg) -> list[tuple[str, str, int, object]]:
        """[(topic, msgtype, t_ns, CDR bytes)] for one frame; times are the colour stamp."""
        keys = [k for k in self.outputs if k != "points" or frame.intrinsics is not None]
        msgs = output_messages(seg, frame.header, self.types, rgb=frame.rgb, depth_m=frame.depth_m,
                               intrinsics=frame.intrinsics, outputs=keys, class_colors=self.colors,
                               alpha=self.alpha, max_depth=self.max_depth,
                               confidence_encoding=self.confidence_encoding)
        out = [(self.topic(k), m.__msgtype__, frame.stamp_ns, self.typestore.serialize_cdr(m, m.__msgtype__))
               for k, m in msgs.items()]
        return out + [("points_skipped", "", 0, None)] * (len(keys) < len(self.outputs))

    def write_encoded(self, encoded: list) -> None:
        if self.frames == 0 and encoded:
            info = class_info_message(self.names, self.colors, self.types)
            self.bag.write(self.topic("class_info"), info, encoded[0][2])
            labels = label_info_message(self.names, self.types.header(encoded[0][2], ""), self.types)
            self.bag.write(self.topic("label_info"), labels, encoded[0][2])
        for topic, msgtype, t_ns, data in encoded:
            if data is None:
                self.points_skipped += 1
            else:
                self.bag.write_raw(topic, msgtype, t_ns, data)
        self.frames += 1

    def write(self, frame: Frame, seg) -> None:
        self.write_encoded(self.encode(frame, seg))


def _lower_priority(nice: int, base: int) -> None:
    """Run this thread at a lower scheduling priority (Linux schedules threads individually), so
    decoding and encoding take idle CPU time rather than the model's: inference is the bottleneck
    and its threads (OpenMP, OpenVINO) slow down far more than in proportion when preempted."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + nice))
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stopped


def run_pipeline(items: Iterable, segment: Callable, write: Callable, *, decode: Callable | None = None,
                 encode: Callable | None = None, workers: int = 2, queue_size: int = 4,
                 on_frame: Callable | None = None, feed: Callable | None = None,
                 finish: Callable[[bool], None] | None = None, nice: int = 5,
                 stop: threading.Event | None = None) -> float:
    """items -> decode (pool) -> segment (this thread) -> encode (pool) -> write (writer thread).

    decode(item) returns a frame or None (skipped); encode(frame, seg) returns what write takes
    (without them: items are frames and write is called as write(frame, seg)). Pools keep the order and at most
    `queue_size` items in flight per stage, so memory stays flat. feed(put) is called first with a
    function that queues a callable for the writer thread (copies of input messages). finish(ok)
    runs last in the writer thread (a writer such as sqlite3 must stay in the thread that opened
    it); ok is False when a stage failed or the run was interrupted. The helper threads run `nice`
    steps below the caller (0: same priority). Returns the seconds spent in `segment`. A stage's
    exception stops the others and is re-raised here; so is KeyboardInterrupt. `stop`: the event
    that stops the stages, shared with a source that waits (a replay sleeping toward its next
    frame wakes on it, so an interrupt ends the run at once).
    """
    from concurrent.futures import ThreadPoolExecutor

    in_q: queue.Queue = queue.Queue(queue_size)
    out_q: queue.Queue = queue.Queue(2 * queue_size)
    stop = stop if stop is not None else threading.Event()
    errors: list[BaseException] = []
    try:
        base = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's (Linux: per thread)
    except (AttributeError, OSError):
        base = 0
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="asymformer-codec", initializer=_lower_priority,
                              initargs=(nice, base))
    if feed is not None:
        feed(lambda job: _put(out_q, ("job", job), stop))

    def produce():
        _lower_priority(nice, base)
        try:
            for item in items:
                _put(in_q, pool.submit(decode, item) if decode else item, stop)
            _put(in_q, _DONE, stop)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)
            stop.set()
        finally:
            close = getattr(items, "close", None)  # a generator source: its cleanup runs now, in this thread
            if close is not None:
                close()

    def consume():
        _lower_priority(nice, base)
        try:
            while (item := out_q.get()) is not _DONE:
                if item[0] == "job":
                    item[1]()
                else:
                    write(item[1].result()) if encode else write(*item[1])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()
            while out_q.get() is not _DONE:  # keep draining so nobody blocks
                pass
        if finish is not None:
            try:
                finish(not stop.is_set() and not errors)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    reader = threading.Thread(target=produce, name="asymformer-read", daemon=True)
    writer = threading.Thread(target=consume, name="asymformer-write", daemon=True)
    reader.start()
    writer.start()
    model_s = 0.0
    try:
        while not stop.is_set():
            try:
                f = in_q.get(timeout=0.1)
            except queue.Empty:
                continue
            if f is _DONE:
                break
            f = f.result() if decode else f
            if f is None:
                continue
            t0 = time.perf_counter()
            seg = segment(f)
            model_s += time.perf_counter() - t0
            _put(out_q, ("frame", pool.submit(encode, f, seg) if encode else (f, seg)), stop)
            if on_frame is not None:
                on_frame(f)
    except _Stopped:  # a helper thread failed and stopped the run: its error is raised below
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        reader.join()  # it returns promptly once stop is set (puts poll it)
        out_q.put(_DONE)
        writer.join()
        pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise errors[0]
    return model_s


def process_bag(segmenter, bag, out, rgb_topic: str, depth_topic: str, info_topic: str | None = None,
                intrinsics=None, storage: str = "mcap", namespace: str = "/asymformer", outputs=OUTPUTS,
                slop_s: float = DEFAULT_SLOP_S, max_depth: float | None = None, alpha: float = 0.5,
                copy_input: bool = True, overwrite: bool = False, progress: bool = True, queue_size: int = 4,
                workers: int = 2, realtime=None, view=None, confidence_encoding: str = "32FC1") -> dict:
    """Segment every paired frame of `bag` and write a labelled rosbag2 at `out`; returns the report.

    Output topics (under `namespace`): labels, confidence, overlay, points (frames with
    intrinsics: the camera-info topic's or `intrinsics`), class_info (JSON names/colours, once),
    label_info (vision_msgs/LabelInfo, once); confidence as 32FC1 or mono8 (`confidence_encoding`);
    the input topics are copied (`copy_input`). Message times are the colour header stamps.
    A topic may be given as TOPIC:TYPE where it carries several message types.
    realtime: a `realtime.RealtimeReplay` (--realtime): frames go through the streaming runtime at
    their recorded rate and only the processed ones are written. view: a RerunView for each frame.

    A damaged recording (a reader error, fewer messages than the file declares) or one that
    yields no frame is a failed one: the report's "failed" says why in one line, and what could
    be segmented is still written (nothing is, when no frame came out). "warnings" lists what
    the user should know (a choice made for them, a declaration that does not match the data).
    """
    from asymformer.progress import progress_bar

    check_out_apart(bag, out)
    topic_prefix(namespace)
    t_start = time.perf_counter()
    with open_bag(bag) as reader:
        topics = list_topics(reader)
        if sum(t.count for t in topics) == 0 and _holds_nothing(reader):  # a stale metadata.yaml may say 0
            raise ValueError(f"{bag}: the bag is empty (no messages); {describe_topics(topics)}")
        (rgb_topic, depth_topic, info_topic), types, warnings = choose_types(bag, reader, rgb_topic, depth_topic,
                                                                            info_topic)
        found = check_topics(bag, topics, rgb_topic, depth_topic, info_topic, types)
        meta = {"asymformer": json.dumps({"source": str(bag), "rgb_topic": rgb_topic, "depth_topic": depth_topic,
                                          "namespace": namespace, "classes": list(segmenter.class_names or [])})}
        jobs = {}

        def feed(put):
            jobs["put"] = put

        def copy(topic, msgtype, t_ns, raw):
            jobs["put"](lambda: writer.write_raw(topic, msgtype, t_ns, raw))

        frames = BagFrames(reader, bag, rgb_topic, depth_topic, info_topic, intrinsics, slop_s,
                           copy if copy_input else None, types)
        total = min(found["rgb"].count, found["depth"].count)
        writer = BagWriter(out, storage, overwrite, custom_data=meta)
        bar = progress_bar(total=total or None, desc=Path(bag).name, unit="frame", enabled=progress, leave=False)
        stop = threading.Event()
        # a run that segmented nothing writes nothing: a "labelled" bag of copied inputs misleads
        finish = lambda ok: writer.close(commit=ok and results.frames > 0)  # noqa: E731
        try:
            results = ResultWriter(writer, segmenter.class_names, segmenter.colors, namespace, outputs, alpha,
                                   max_depth, confidence_encoding)
            conf = needs_confidence(results.outputs, view is not None)  # labels only: half the post-processing
            if realtime is None and view is None:
                model_s = run_pipeline(frames.pairs(), lambda f: segmenter(f.rgb, f.depth_m, depth_unit=1.0,
                                                                           confidence=conf),
                                       results.write_encoded, decode=frames.decode, encode=results.encode,
                                       workers=workers, queue_size=queue_size, on_frame=lambda f: bar.update(1),
                                       feed=feed, finish=finish, stop=stop)
            else:  # --realtime and/or a Rerun view: decoded frames in, (frame, seg) to the writer thread
                if realtime is not None:
                    realtime.confidence = conf  # this run's outputs decide, as for the node
                source, segment, sink = _stages(segmenter, frames, results, realtime, view, stop)
                # nice=0: with --realtime the runtime's threads start in the reading thread and
                # inherit its priority; the model must not run below the caller's
                model_s = run_pipeline(source, segment, sink, queue_size=queue_size, on_frame=lambda f: bar.update(1),
                                       feed=feed, finish=finish, nice=0 if realtime is not None else 5, stop=stop)
        finally:
            bar.close()
            writer.close(commit=False)  # a no-op after the writer thread closed it
        declared = frames.declared()
        inner = storage_counts(reader, frames.connections())
    seconds = time.perf_counter() - t_start
    n = results.frames
    stats = frames.stats()
    integrity, failed, more = _verdict(bag, frames, stats, declared, inner, n)
    return {"bag": str(bag), "out": str(out) if n else None, "storage": storage, "frames": n,
            "failed": failed, "warnings": warnings + more,
            "topics": {"rgb": rgb_topic, "depth": depth_topic, "camera_info": info_topic,
                       "types": dict(types),
                       "outputs": {k: results.topic(k) for k in (*results.outputs, "class_info")}},
            **stats, "integrity": integrity,
            "points": _points_note(results, intrinsics, info_topic, stats),
            "messages_written": dict(writer.counts) if n else {},
            "model_ms": round(1000 * model_s / n, 2) if n else None,
            "model_fps": round(n / model_s, 3) if n and model_s else None,
            "end_to_end_fps": round(n / seconds, 3) if n else None, "seconds": round(seconds, 3),
            "backend": segmenter.backend, "device": str(segmenter.device),
            "timing_note": "model_* = Segmenter calls (pre/post-processing included); end_to_end = whole run "
                           "(reading, decoding, inference, encoding, writing)",
            **(realtime.report() if realtime is not None else {})}


def _verdict(bag, frames: BagFrames, stats: dict, declared: dict, inner: dict | None, n: int):
    """(integrity entry, the one-line failure or None, warnings) of a finished recording: damage
    (a reader error, fewer messages than declared) and no frame out are failures."""
    names = {"color": frames.rgb_topic, "depth": frames.depth_topic}
    integrity = integrity_report(bag, declared, frames.log, inner)
    damage = damage_problem(bag, integrity, n)
    problems = [damage] if damage else []
    if n == 0:
        problems.append(f"no frames were segmented and no bag was written: "
                        f"{zero_frames_cause(stats, frames.log, names)}")
    return integrity, "; ".join(problems) or None, count_warnings(integrity) + stamp_warnings(frames.log, names)


def _holds_nothing(reader) -> bool:
    """No message can be read at all (the declared counts alone may be wrong)."""
    try:
        return next(iter(reader.messages()), None) is None
    except Exception:  # noqa: BLE001 - damaged: not empty; the run reports the damage
        return False


def _stages(segmenter, frames, results: ResultWriter, realtime, view, stop=None):
    """(source, segment, sink) for run_pipeline: every frame through the Segmenter, or with
    --realtime the StreamRunner's results (each carries its Frame as meta), plus the Rerun view."""
    if realtime is None:
        def sink(f, seg):
            results.write(f, seg)
            if view is not None:
                view.log(f.stamp_ns, f.rgb, f.depth_m, seg.labels, seg.confidence, f.intrinsics, index=f.index)

        return frames, (lambda f: segmenter(f.rgb, f.depth_m, depth_unit=1.0)), sink

    def sink_rt(r, seg):
        results.write(r.meta, seg)
        if view is not None:
            view.log(r.stamp_ns, r.meta.rgb, r.meta.depth_m, seg.labels, seg.confidence, r.meta.intrinsics,
                     latency_ms=r.latency_ms, model_ms=r.model_ms, index=r.meta.index)

    return realtime.results(frames, stop=stop), (lambda r: r.segmentation), sink_rt


def _points_note(results: ResultWriter, intrinsics, info_topic, stats) -> str:
    if "points" not in results.outputs:
        return "off (not requested)"
    if intrinsics is None and not info_topic:
        return "off: no intrinsics (pass --camera-info-topic or --intrinsics fx,fy,cx,cy)"
    done = results.frames - results.points_skipped
    why = "; ".join(f"{k} ({v} frames)" for k, v in stats["frames_without_intrinsics"].items())
    first = stats["frames_without_points"][0]["stamp_ns"] if stats["frames_without_points"] else None
    return (f"written for {done} of {results.frames} frames" + (f"; none for: {why}" if why else "")
            + (f" (first at stamp {first}; all in frames_without_points)" if why and first is not None else ""))
