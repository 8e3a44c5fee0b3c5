"""`asymformer predict --bag ...` (recordings in, labelled recordings out) and the PLY options of
`predict` on files: the robot side of the predict command, kept out of cli/deploy.py."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import CLIError, _flag

OUTPUT_KEYS = ("labels", "confidence", "overlay", "points")
_FILE_ONLY = ("labels", "panel", "attention", "save_labels")  # predict options that mean nothing for a bag


def _parse_shard(text: str) -> tuple[int, int]:
    import argparse

    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N like 0/4 (task K of N, from 0), got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise argparse.ArgumentTypeError(f"needs 0 <= K < N, got {text!r} (Slurm: --array=0-(N-1), "
                                         "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    return k, n


def _parse_outputs(text: str) -> tuple[str, ...]:
    import argparse

    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in keys if k not in OUTPUT_KEYS]
    if bad or not keys:
        raise argparse.ArgumentTypeError(f"choose among {','.join(OUTPUT_KEYS)} (comma list), got {text!r}")
    return keys


def add_robot_args(p) -> None:
    """The bag and point-cloud options of `predict` (called at the end of cli/deploy.py's _add_predict)."""
    g = p.add_argument_group("recordings (ROS 1 .bag, ROS 2 rosbag2 / .mcap / .db3) and point clouds")
    g.add_argument("--bag", nargs="+", metavar="IN",
                   help="recordings to segment (files, rosbag2 folders, or folders of them) instead of --rgb/--depth; "
                        "writes a labelled rosbag2 at --out (a folder of them for several recordings)")
    g.add_argument("--rgb-topic", help="with --bag: colour topic (sensor_msgs/Image or CompressedImage); TOPIC:TYPE "
                                       "picks the type on a topic that carries several")
    g.add_argument("--depth-topic", help="with --bag: depth topic registered to colour (Image 16UC1/32FC1 or "
                                         "compressedDepth), e.g. realsense2_camera's aligned_depth_to_color")
    g.add_argument("--camera-info-topic", help="with --bag: CameraInfo of the colour camera (for points)")
    g.add_argument("--intrinsics", metavar="fx,fy,cx,cy|FILE.yaml",
                   help="colour camera intrinsics (or a ROS camera-calibration YAML): with --bag instead of the "
                        "camera-info topic; on files also writes <name>.ply semantic point clouds")
    g.add_argument("--confidence-encoding", choices=("32FC1", "mono8"), default="32FC1",
                   help="confidence images as 32FC1 probabilities (default) or mono8 0-255 (Nav2's "
                        "semantic_segmentation_layer)")
    g.add_argument("--max-depth", type=float, metavar="M", help="drop points farther than M metres (default: keep all)")
    g.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output bag storage (default mcap)")
    g.add_argument("--namespace", default="/asymformer", help="prefix of the output topics (default /asymformer)")
    g.add_argument("--outputs", type=_parse_outputs, default=OUTPUT_KEYS, metavar="LIST",
                   help="output topics, comma list of labels,confidence,overlay,points (default all; points when "
                        "intrinsics are known)")
    g.add_argument("--slop", type=float, default=None, metavar="S",
                   help="max colour-depth stamp difference for a pair, seconds (default 0.03)")
    _flag(g, "--copy-input", "copy the colour, depth and camera-info topics into the output bag", default=True)
    _flag(g, "--overwrite", "replace outputs an earlier run left in --out (refused otherwise): the frames' files, "
          "or with --bag the output bag, only once the new one is complete")
    g.add_argument("--shard", type=_parse_shard, metavar="K/N", help="process every N-th recording from the K-th "
                                                                     "(K from 0): one task of a cluster job array")
    g.add_argument("--report", metavar="FILE.json", help="write the run's summary as JSON")
    _flag(g, "--realtime", "with --bag: replay at the recorded rate through the streaming runtime (keep-latest, "
                           "drops what the model cannot keep up with); the report adds processed, dropped, latency")
    g.add_argument("--realtime-speed", type=float, default=1.0, metavar="X",
                   help="with --realtime: replay X times faster than recorded (default 1.0)")
    g.add_argument("--max-gap", type=float, default=None, metavar="S",
                   help="with --realtime: a jump of more than S seconds in the recording's stamps (a clock resync) "
                        "is skipped and reported, not waited out (default 5)")
    if "--precision" not in p._option_string_actions:  # another change may give predict its own
        p.add_argument("--precision", choices=("fp32", "int8", "bf16"), default="fp32",
                       help="fp32 (exact), or on the CPU int8 / bf16 (fastest such backend for --size)")


def check_file_mode(args) -> None:
    """predict on files: the bag-only options are refused; --intrinsics is parsed now."""
    for flag in ("rgb_topic", "depth_topic", "camera_info_topic", "shard", "slop"):
        if getattr(args, flag) is not None:
            raise CLIError(f"--{flag.replace('_', '-')} is for --bag recordings")
    if args.realtime or args.realtime_speed != 1.0 or args.max_gap is not None:
        raise CLIError("--realtime replays --bag recordings at their recorded rate; image files have no time")
    if args.rgb is None or args.depth is None:
        raise CLIError("predict needs --rgb and --depth (image files), or --bag with --rgb-topic and --depth-topic")
    _check_max_depth(args)
    args.intrinsics = _intrinsics(args)
    if args.intrinsics is not None:
        _require("plyfile", "writing PLY point clouds (--intrinsics)")


def _require(module: str, what: str) -> None:
    """An optional dependency, checked before any work: one line naming the extra."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise CLIError(f"{what} needs {module}: pip install 'asymformer[robots]'")


def _check_max_depth(args) -> None:
    if args.max_depth is not None and not 0 < args.max_depth < float("inf"):  # inf: leave it out to keep all
        raise CLIError(f"--max-depth must be a positive number of metres (leave it out to keep all points), "
                       f"got {args.max_depth}")


def _intrinsics(args):
    if args.intrinsics is None:
        return None
    from asymformer.outputs.points import Intrinsics

    try:
        return Intrinsics.load(args.intrinsics)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(f"--intrinsics: {exc}") from None


def _check_bag_args(args, bags: list[Path]) -> None:
    if args.rgb is not None or args.depth is not None:
        raise CLIError("--bag reads colour and depth from the recording: drop --rgb/--depth")
    used = [f"--{f.replace('_', '-')}" for f in _FILE_ONLY if getattr(args, f, None)]
    if used:
        raise CLIError(f"{', '.join(used)} are for image files, not --bag (choose output topics with --outputs)")
    if not args.rgb_topic or not args.depth_topic:
        from asymformer.robot.bags import describe_topics, list_topics, open_bag

        with open_bag(bags[0]) as reader:
            listing = describe_topics(list_topics(reader))
        raise CLIError(f"--bag needs --rgb-topic and --depth-topic; {bags[0]}: {listing}")
    if "points" in args.outputs and args.outputs != OUTPUT_KEYS and not (args.camera_info_topic or args.intrinsics):
        raise CLIError("--outputs points needs intrinsics: pass --camera-info-topic or --intrinsics fx,fy,cx,cy")
    from asymformer.robot.pipeline import topic_prefix

    try:
        topic_prefix(args.namespace)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.slop is not None and not 0 <= args.slop <= 10:
        raise CLIError(f"--slop must be between 0 and 10 seconds, got {args.slop}")
    _check_max_depth(args)


def _report_path(path: str | None, shard) -> Path | None:
    """Shards of one job write distinct reports: FILE.json -> FILE.shard-K-of-N.json."""
    if path is None:
        return None
    p = Path(path)
    return p.with_name(f"{p.stem}.shard-{shard[0]}-of-{shard[1]}{p.suffix}") if shard else p


def run_bags(args) -> int:
    """`predict --bag`: one recording -> the bag at --out; several (or a folder, or --shard) ->
    --out/<name>/ bag + --out/<name>.json each; one JSON summary with --report."""
    from asymformer.deploy.segmenter import Segmenter
    from asymformer.files import make_folder
    from asymformer.robot.bags import bag_paths, check_out_apart, check_out_name, first_overlap, output_names, shard

    _require("rosbags", "predict --bag")
    bags = bag_paths(args.bag)
    _check_bag_args(args, bags)
    single = len(bags) == 1 and args.shard is None and Path(args.bag[0]) == bags[0]
    names = output_names(bags)
    if args.shard:
        keep = set(shard(list(range(len(bags))), *args.shard))
        bags, names = [b for i, b in enumerate(bags) if i in keep], [n for i, n in enumerate(names) if i in keep]
    report_path = _report_path(args.report, args.shard)
    if report_path is not None and report_path.is_dir():
        raise CLIError(f"--report {report_path} is a folder; give a file name")
    out = Path(args.out)
    targets = [out] if single else [out / n for n in names]
    if report_path is not None and any(report_path.resolve().is_relative_to(t.resolve()) for t in targets):
        raise CLIError(f"--report {report_path} is the output bag or inside it; give a file outside the bag, "
                       f"e.g. {out.resolve().with_suffix('.json')}")
    if single:
        try:
            check_out_name(out)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    for source in {*bags, *map(Path, args.bag)} if report_path is not None else ():
        if report_path.resolve().is_relative_to(source.resolve()):  # 'x.mcap --report x.mcap' replaced the recording
            raise CLIError(f"--report {report_path} is an input recording or inside one ({source}); give a file "
                           "outside the inputs")
    # any input (a recording or a folder of them) against any output
    clash = first_overlap({*bags, *map(Path, args.bag)}, targets)
    if clash is not None:
        source, target = clash
        try:
            check_out_apart(source, target)
        except ValueError as exc:
            raise CLIError(str(exc) if single else f"--out {out}: the output bag {target} overlaps the input "
                           f"{source}; choose an --out outside the inputs") from None
    if not args.overwrite:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise CLIError(f"{existing[0]} exists; pass --overwrite to replace it, or choose another --out")
    intrinsics = _intrinsics(args)
    if args.realtime_speed != 1.0 and not args.realtime:
        raise CLIError("--realtime-speed sets the replay rate of --realtime; add --realtime (or drop --realtime-speed)")
    if args.max_gap is not None and not args.realtime:
        raise CLIError("--max-gap bounds the waits of the --realtime replay; add --realtime (or drop --max-gap)")
    if args.realtime:
        from asymformer.robot.realtime import MAX_SPEED, MIN_SPEED

        if not MIN_SPEED <= args.realtime_speed <= MAX_SPEED:
            raise CLIError(f"--realtime-speed must be between {MIN_SPEED} and {MAX_SPEED} (1.0 = as recorded, 2 = "
                           f"twice as fast), got {args.realtime_speed}")
        if args.max_gap is not None and not 0 < args.max_gap <= 3600:
            raise CLIError(f"--max-gap must be between 0 and 3600 seconds, got {args.max_gap}")
    if report_path is not None:
        from .live import probe_writable

        make_folder(report_path.parent)
        probe_writable(report_path)
    seg = Segmenter(args.checkpoint, device=args.device, normalization=args.normalization, size=args.size,
                    optimize=args.optimize, precision=getattr(args, "precision", "fp32"))
    with _live_view(args, seg) as view:
        return _run_bag_list(args, seg, bags, targets, single, out, report_path, intrinsics, view)


def _live_view(args, seg):
    """--rerun / --rerun-save (cli/deploy.py), or nothing."""
    import contextlib

    from .live import open_rerun_view

    view = open_rerun_view(args, seg)
    return view if view is not None else contextlib.nullcontext()


def _run_bag_list(args, seg, bags, targets, single, out, report_path, intrinsics, view) -> int:
    """Each recording in turn; one that fails (damaged, nothing segmented, a write error) is one
    line on stderr, counted in `failed`, and the batch goes on. SIGTERM ends the run as Ctrl-C
    does: the recording in progress leaves nothing half-written, the finished ones stay."""
    from asymformer.files import write_json

    reports: list[dict] = []
    summary = {"bags": reports, "shard": list(args.shard) if args.shard else None, "failed": 0, "frames": 0}
    try:
        with _sigterm_as_interrupt():
            for bag, target in zip(bags, targets, strict=True):
                r = _one_bag(args, seg, bag, target, single, intrinsics, view)
                reports.append(r)
                if r.get("failed"):
                    summary["failed"] += 1
                    text = r["failed"] if r["failed"].startswith(str(bag)) else f"{bag}: {r['failed']}"  # the path once
                    print(f"asymformer predict: error: {text}", file=sys.stderr)
                if "error" in r:
                    continue
                if not single and r["frames"]:
                    write_json(out / f"{target.name}.json", r)
                print(_summary_line(r))
    except KeyboardInterrupt:
        summary["interrupted"] = True
        _finish_summary(summary, report_path)
        raise
    _finish_summary(summary, report_path)
    if not single:
        print(f"{len(reports) - summary['failed']} of {len(reports)} recordings -> {out}"
              + (f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""))
    return 2 if summary["failed"] else 0


def _one_bag(args, seg, bag, target, single, intrinsics, view) -> dict:
    """One recording -> its report; an error that ends it is the report {"bag", "error", "failed"}."""
    import os

    from asymformer.robot.pairing import DEFAULT_SLOP_S
    from asymformer.robot.pipeline import process_bag
    from asymformer.robot.realtime import DEFAULT_MAX_GAP_S, RealtimeReplay

    try:
        realtime = RealtimeReplay(seg, args.realtime_speed, max_gap_s=args.max_gap or DEFAULT_MAX_GAP_S) \
            if args.realtime else None
        r = process_bag(seg, bag, target, args.rgb_topic, args.depth_topic, args.camera_info_topic,
                        intrinsics=intrinsics, storage=args.storage, namespace=args.namespace,
                        outputs=args.outputs, slop_s=DEFAULT_SLOP_S if args.slop is None else args.slop,
                        max_depth=args.max_depth, alpha=args.alpha, copy_input=args.copy_input,
                        overwrite=args.overwrite, progress=args.progress, realtime=realtime, view=view,
                        confidence_encoding=args.confidence_encoding)
    except (ValueError, OSError) as exc:
        if single:
            raise
        text = str(exc) if not isinstance(exc, OSError) or str(exc).startswith("cannot write") else \
            f"{type(exc).__name__}: {exc}"
        return {"bag": str(bag), "error": text, "failed": text}
    except Exception as exc:  # noqa: BLE001 - one recording must not end the batch or print a traceback
        if os.environ.get("ASYMFORMER_DEBUG"):
            raise
        text = f"unexpected {type(exc).__name__} while reading this recording: {' '.join(str(exc).split())}"
        return {"bag": str(bag), "error": text, "failed": text}
    for w in r["warnings"]:
        print(f"asymformer predict: warning: {bag}: {w}", file=sys.stderr)
    return r


def _finish_summary(summary: dict, report_path) -> None:
    from asymformer.files import write_json

    summary["frames"] = sum(r.get("frames", 0) for r in summary["bags"])
    if report_path is not None:
        write_json(report_path, summary)


def _sigterm_as_interrupt():
    """SIGTERM (a job scheduler, `kill`) handled as Ctrl-C: the run's cleanup removes the
    unfinished output; the default action kills the process and leaves `.NAME.partial/` behind."""
    import contextlib
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def handler():
        old = signal.signal(signal.SIGTERM, raise_interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, old)

    return handler()


def _summary_line(r: dict) -> str:
    skipped = f", {r['skipped']} skipped ({', '.join(f'{k}: {v}' for k, v in r['skipped_by_reason'].items())})" \
        if r["skipped"] else ""
    live = (f"; realtime: {r['processed']} processed, {r['dropped']} dropped, latency p50 {r['latency_p50_ms']} ms, "
            f"p99 {r['latency_p99_ms']} ms") if "realtime" in r else ""
    if "realtime" in r and r["realtime"]["gaps_skipped"]:
        live += f"; {r['realtime']['gaps_skipped']} stamp gaps over --max-gap {r['realtime']['max_gap_s']:g} s skipped"
    if r["frames"] == 0:  # the cause is the error line on stderr
        return (f"{r['bag']}: no frames ({r['colour_messages']} colour and {r['depth_messages']} depth messages, "
                f"{r['pairs']} pairs within --slop {r['slop_ms'] / 1000:g} s{skipped}); nothing written")
    return (f"{r['bag']} -> {r['out']}: {r['frames']} frames from {r['pairs']} pairs (unpaired colour "
            f"{r['unpaired_color']}, depth {r['unpaired_depth']}{skipped}); model {r['model_ms']} ms/frame, "
            f"end to end {r['end_to_end_fps']} frames/s ({r['backend']} on {r['device']}); points: {r['points']}"
            + live + ("; counted as failed: the readable part of a damaged recording" if r.get("failed") else ""))


__all__ = ["add_robot_args", "check_file_mode", "run_bags"]
