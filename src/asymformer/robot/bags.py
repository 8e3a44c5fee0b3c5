"""Bag files: finding recordings, listing and checking topics, writing rosbag2 atomically.

Reading uses rosbags' AnyReader, which opens a rosbag2 folder (metadata.yaml + MCAP or sqlite3),
a bare `.mcap` / `.db3` file, and ROS 1 `.bag` files, without ROS. Writing produces what
`ros2 bag record` does: a folder with metadata.yaml and one MCAP (or sqlite3) file, built under a
temporary name next to OUT and renamed at the end, so an interrupted run leaves no half bag at OUT.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from asymformer.files import WriteFailed, make_folder, temp_sibling, write_failed

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)
BAG_SUFFIXES = (".bag", ".mcap", ".db3")
STORAGES = ("mcap", "sqlite3")
_EXTRA = "reading and writing bags needs rosbags: pip install 'asymformer[robots]'"


def _rosbags():
    try:
        import rosbags  # noqa: F401
    except ImportError:
        raise ImportError(_EXTRA) from None


@functools.cache
def ros2_typestore():
    """The ROS 2 Humble typestore, plus vision_msgs' LabelInfo: what output messages are built
    and serialised with (the bag carries the definitions, so readers decode LabelInfo too)."""
    _rosbags()
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from .messages import VISION_MSGS

    store = get_typestore(Stores.ROS2_HUMBLE)
    if "vision_msgs/msg/LabelInfo" not in store.types:
        types = {}
        for name, text in VISION_MSGS.items():
            types.update(get_types_from_msg(text, name))
        store.register(types)
    return store


# ------------------------------------------------------------------------------------------------ finding bags
def is_bag(path: Path) -> bool:
    """A recording rosbags opens: a rosbag2 folder, or a .bag / .mcap / .db3 file."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or (path.is_file() and path.suffix in BAG_SUFFIXES)


def bag_paths(specs) -> list[Path]:
    """--bag arguments -> recordings: each a bag, or a folder whose bags (rosbag2 folders, .bag / .mcap /
    .db3 files) are taken, sorted; a rosbag2 folder's own .mcap / .db3 files are not separate bags."""
    out: list[Path] = []
    for spec in [specs] if isinstance(specs, (str, Path)) else specs:
        p = Path(spec)
        if is_bag(p):
            out.append(p)
        elif p.is_dir():
            found = sorted(c for c in p.iterdir() if is_bag(c) and not c.name.startswith("."))
            if not found:
                raise FileNotFoundError(f"--bag {p}: no recordings in this folder (rosbag2 folders with "
                                        "metadata.yaml, or .bag / .mcap / .db3 files)")
            out += found
        elif p.exists():
            raise ValueError(f"--bag {p}: not a recording; expected a rosbag2 folder (with metadata.yaml) or a "
                             ".bag / .mcap / .db3 file")
        else:
            raise FileNotFoundError(f"--bag {p}: no such file or folder")
    if len({q.resolve() for q in out}) != len(out):
        raise ValueError("--bag: the same recording is given twice")
    return out


def shard(paths: list[Path], k: int, n: int) -> list[Path]:
    """Every n-th recording starting at k (0 <= k < n): a cluster array's task k of n."""
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard K/N needs 0 <= K < N, got {k}/{n} (Slurm: $SLURM_ARRAY_TASK_ID/"
                         "$SLURM_ARRAY_TASK_COUNT with --array=0-(N-1); Kubernetes: $JOB_COMPLETION_INDEX)")
    return paths[k::n]


def check_out_apart(bag, out) -> None:
    """Refuse an output bag that is, holds or sits inside an input recording: with --overwrite the
    finished output would replace (delete) the recording it was made from, and an output inside a
    rosbag2 folder makes that folder no longer a plain recording."""
    b, o = Path(bag).resolve(), Path(out).resolve()
    if o == b or b.is_relative_to(o) or o.is_relative_to(b):
        raise ValueError(f"--out {out} overlaps the input recording {bag} (the same path, inside it or holding it); "
                         "choose an --out outside the recording")


def first_overlap(sources, targets) -> tuple[Path, Path] | None:
    """The first (source, target) pair that is the same path or where one holds the other, or None.
    Each path is resolved once and compared through sets of parents: a batch of thousands of
    recordings took minutes when every pair was resolved and compared."""
    src = {Path(s).resolve(): Path(s) for s in sources}
    tgt = {Path(t).resolve(): Path(t) for t in targets}
    src_parents = {p: s for r, s in src.items() for p in (r, *r.parents)}
    for r, t in tgt.items():
        if r in src_parents:  # the target is a source or holds one
            return src_parents[r], t
        for p in r.parents:  # the target lies inside a source
            if p in src:
                return src[p], t
    return None


def check_out_name(out) -> None:
    """An output bag is a rosbag2 folder; '--out run.mcap' made a folder named run.mcap holding
    run.mcap.mcap, which tools then open as a file and fail on (and '.bag' promised ROS 1)."""
    p = Path(out)
    if p.suffix.lower() in (".mcap", ".db3", ".bag"):
        raise ValueError(f"--out {out}: the output is a rosbag2 folder (metadata.yaml + {p.stem}.mcap inside, as "
                         f"ros2 bag record writes), not a {p.suffix} file; give a folder name, e.g. --out "
                         f"{p.with_suffix('')}")


def output_names(paths: list[Path]) -> list[str]:
    """One distinct output name per recording: its stem, with parent folders prepended until unique."""
    def name(p: Path, depth: int) -> str:
        parts = [*p.resolve().parent.parts[-depth:], p.stem] if depth else [p.stem]
        return "_".join(x.strip("/") or "root" for x in parts)

    names = [name(p, 0) for p in paths]
    depth = 0
    while len(set(names)) != len(names) and depth < 32:
        depth += 1
        dup = {n for n in names if names.count(n) > 1}
        names = [name(p, depth) if n in dup else n for p, n in zip(paths, names, strict=True)]
    return names


# ------------------------------------------------------------------------------------------------ topics
@dataclass(frozen=True)
class TopicSummary:
    topic: str
    msgtype: str
    count: int


def _repair_hint(error: str, path) -> str:
    """The usual cause of an unreadable recording is a recorder killed mid-run (a cut-short file):
    name the tool that repairs it."""
    from .integrity import repair_hint

    if "end magic" in error:  # MCAP without its footer
        return f"; the file is cut short (the recording did not finish): {repair_hint(path)}"
    if "index looks damaged" in error or "could not be read" in error.lower():  # ROS 1
        return f"; the bag is cut short or its index is damaged: {repair_hint(path)}"
    if any(w in error.lower() for w in ("checksum", "damaged", "invalid", "mismatch", "corrupt", "malformed")):
        return f"; {repair_hint(path)}"
    return ""


@contextlib.contextmanager
def open_bag(path):
    """An open rosbags AnyReader for one recording; errors name the file."""
    _rosbags()
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag not found: {p}")
    store = get_typestore(Stores.ROS1_NOETIC if p.suffix == ".bag" else Stores.ROS2_HUMBLE)
    try:
        reader = AnyReader([p], default_typestore=store)
        reader.open()
    except AnyReaderError as exc:
        text = " ".join(str(exc).split())
        raise ValueError(f"{p}: cannot read this bag ({text}){_repair_hint(str(exc), p)}") from None
    except Exception as exc:  # noqa: BLE001 - zstd / bz2 / sqlite3 / struct errors of a damaged file's index
        if isinstance(exc, OSError) and exc.errno is not None:  # the file system's own error: as it is
            raise
        from .integrity import describe_error

        raise ValueError(f"{p}: cannot read this bag ({describe_error(exc)}){_repair_hint('damaged', p)}") from None
    try:
        yield reader
    finally:
        reader.close()


def normalize_type(msgtype: str | None) -> str:
    """'sensor_msgs/Image' (ROS 1 style, some MCAP writers) -> 'sensor_msgs/msg/Image'."""
    if not msgtype:
        return "(several types)"
    parts = msgtype.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msgtype


def list_topics(reader) -> list[TopicSummary]:
    return [TopicSummary(t, normalize_type(info.msgtype), int(info.msgcount or 0))
            for t, info in sorted(reader.topics.items())]


def likely_topics(topics: list[TopicSummary]) -> dict[str, list[str]]:
    """The topics that look like colour, depth and camera info (names as realsense2_camera, TUM,
    Azure Kinect and ZED drivers publish them), best first."""
    def score_depth(t: TopicSummary) -> int:
        n = t.topic.lower()
        return 2 * ("aligned" in n or "registered" in n) + ("compresseddepth" in n) - ("camera_info" in n)

    images = [t for t in topics if t.msgtype in IMAGE_TYPES]
    depth = [t for t in images if "depth" in t.topic.lower()]
    color = [t for t in images if t not in depth and not any(w in t.topic.lower() for w in ("infra", "ir/", "label",
                                                                                           "confidence", "overlay"))]
    color.sort(key=lambda t: (not any(w in t.topic.lower() for w in ("color", "rgb")), "compressed" in t.topic))
    depth.sort(key=lambda t: -score_depth(t))
    info = [t for t in topics if t.msgtype == CAMERA_INFO]
    info.sort(key=lambda t: (not any(w in t.topic.lower() for w in ("color", "rgb")), "depth" in t.topic.lower()))
    return {"color": [t.topic for t in color], "depth": [t.topic for t in depth], "info": [t.topic for t in info]}


def describe_topics(topics: list[TopicSummary]) -> str:
    """One line: every topic with its type and count, then the likely choices."""
    if not topics:
        return "the bag has no topics at all"
    listed = "; ".join(f"{t.topic} ({t.msgtype}, {t.count} messages)" for t in topics)
    likely = likely_topics(topics)
    hint = ", ".join(f"--{flag} {likely[key][0]}" for key, flag in (("color", "rgb-topic"), ("depth", "depth-topic"),
                                                                     ("info", "camera-info-topic")) if likely[key])
    return f"its topics: {listed}" + (f"; likely: {hint}" if hint else "")


def split_topic(spec: str | None) -> tuple[str | None, str | None]:
    """'TOPIC:TYPE' -> (TOPIC, normalised TYPE); a plain topic -> (topic, None). ROS names have no ':'."""
    if not spec or ":" not in spec:
        return spec, None
    topic, msgtype = spec.split(":", 1)
    return topic, normalize_type(msgtype.strip())


def choose_types(bag, reader, *specs) -> tuple[list, dict[str, str], list[str]]:
    """Topics given as TOPIC or TOPIC:TYPE -> (topics, {topic: type} for topics that carry several
    message types, warnings). A topic with several types is read as the type the user named, else
    as the one with the most messages, and a warning says so (a recorder that saw two publishers
    of different types on one name records both)."""
    topics, types, warnings = [], {}, []
    per_topic: dict[str, dict[str, int]] = {}
    for c in reader.connections:
        counts = per_topic.setdefault(c.topic, {})
        counts[normalize_type(c.msgtype)] = counts.get(normalize_type(c.msgtype), 0) + int(c.msgcount or 0)
    for spec in specs:
        topic, wanted = split_topic(spec)
        topics.append(topic)
        have = per_topic.get(topic, {})
        listed = ", ".join(f"{t} ({n} messages)" for t, n in sorted(have.items(), key=lambda e: -e[1]))
        if wanted is not None:
            if have and wanted not in have:
                raise ValueError(f"{bag}: {topic} carries no {wanted}; it carries {listed}")
            if len(have) > 1:
                types[topic] = wanted
        elif len(have) > 1:
            best = max(have, key=lambda t: (t in (*IMAGE_TYPES, CAMERA_INFO), have[t]))
            types[topic] = best
            warnings.append(f"{topic} carries {len(have)} message types ({listed}); reading {best}, the one with "
                            f"the most messages; name another as {topic}:TYPE")
    return topics, types, warnings


def check_topics(bag, topics: list[TopicSummary], rgb: str, depth: str, info: str | None,
                 types: dict[str, str] | None = None) -> dict[str, TopicSummary]:
    """The chosen topics exist and have usable types; else one line listing the bag's topics.
    types: the type read on a topic that carries several (`choose_types`)."""
    by_name = {t.topic: t for t in topics}
    want = {"rgb": (rgb, IMAGE_TYPES), "depth": (depth, IMAGE_TYPES)}
    if info:
        want["camera-info"] = (info, (CAMERA_INFO,))
    found = {}
    for role, (name, accepted) in want.items():
        t = by_name.get(name)
        if t is None:
            raise ValueError(f"{bag}: no topic {name!r} (--{role}-topic); {describe_topics(topics)}")
        if types and name in types:
            t = TopicSummary(name, types[name], t.count)
        if t.msgtype not in accepted:
            raise ValueError(f"{bag}: --{role}-topic {name} carries {t.msgtype}, expected "
                             f"{' or '.join(accepted)}; {describe_topics(topics)}")
        found[role] = t
    if rgb == depth:
        raise ValueError(f"{bag}: --rgb-topic and --depth-topic are the same topic {rgb}")
    return found


# ------------------------------------------------------------------------------------------------ writing
class BagWriter:
    """A rosbag2 (MCAP or sqlite3) written at a temporary sibling of `out` and renamed there by
    `close(commit=True)`; `close(commit=False)` (an error or an interrupt) deletes it.

    The temporary folder holds the bag under OUT's own name, so the storage file inside is
    `OUT.mcap` as `ros2 bag record` names it, before and after the rename.
    """

    def __init__(self, out, storage: str = "mcap", overwrite: bool = False, custom_data: dict | None = None):
        _rosbags()
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError(f"--storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        check_out_name(out)
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise FileExistsError(f"{self.out} exists; pass --overwrite to replace it, or choose another --out")
        if self.out.exists() and not self.out.is_dir():
            raise FileExistsError(f"{self.out} is a file; an output bag is a folder")
        self._tmp = temp_sibling(self.out, ".partial")
        shutil.rmtree(self._tmp, ignore_errors=True)  # left by a killed run of this process id
        try:
            make_folder(self._tmp)
        except OSError as exc:  # name the output asked for, not the hidden temporary folder
            raise WriteFailed(exc.errno, exc.strerror or str(exc), os.fspath(self.out)) from None
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._tmp / self.out.name, version=9, storage_plugin=plugin)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._opened = False  # opened by the first write, in the thread that writes (sqlite3 is per-thread)
        self._conns: dict[tuple[str, str], object] = {}
        self.counts: dict[str, int] = {}
        self._closed = False

    def connection(self, topic: str, msgtype: str, typestore=None):
        if not self._opened:
            self._writer.open()
            self._opened = True
        key = (topic, msgtype)
        if key not in self._conns:
            self._conns[key] = self._writer.add_connection(topic, msgtype, typestore=typestore or ros2_typestore())
        return self._conns[key]

    def write_raw(self, topic: str, msgtype: str, t_ns: int, data, typestore=None) -> None:
        """Write CDR bytes as they are (a message copied from a ROS 2 input bag)."""
        try:
            self._writer.write(self.connection(topic, msgtype, typestore), int(t_ns), data)
        except OSError as exc:  # a full disk: "[Errno 28]" alone names no path
            raise write_failed(self.out, exc) from None
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write(self, topic: str, msg, t_ns: int) -> None:
        """Serialise a ROS 2 message (rosbags class) and write it at t_ns."""
        ts = ros2_typestore()
        self.write_raw(topic, msg.__msgtype__, t_ns, ts.serialize_cdr(msg, msg.__msgtype__))

    def close(self, commit: bool) -> Path | None:
        if self._closed:
            return None
        self._closed = True
        try:
            if not commit:
                with contextlib.suppress(Exception):  # the bag is deleted anyway
                    if self._opened:
                        self._writer.close()
                return None
            try:
                if not self._opened:  # no message at all: still a valid, empty bag
                    self._writer.open()
                self._writer.close()
                staged = self._tmp / self.out.name
                if self.out.exists():  # --overwrite: the old bag goes only once the new one is complete
                    trash = self._tmp / ".replaced"
                    os.replace(self.out, trash)
                os.replace(staged, self.out)
            except OSError as exc:
                raise write_failed(self.out, exc) from None
            return self.out
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)
