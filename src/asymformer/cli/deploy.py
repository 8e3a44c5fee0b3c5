"""`asymformer predict`, `export` and `benchmark` (deploy/)."""

from __future__ import annotations

import contextlib
import sys

from .common import (
    CLIError,
    _add_batch_size,
    _add_progress,
    _add_size,
    _add_threads,
    _apply_threads,
    _check_out_dir,
    _check_out_file,
    _flag,
    _parse_hw,
    _positive,
)
from .live import add_rerun_options, open_rerun_view
from .robot import add_robot_args, check_file_mode, run_bags


# --------------------------------------------------------------------------- predict / export / benchmark (deploy)
def _add_predict(sub):
    p = sub.add_parser("predict", help="segment RGB-D files and write colourised PNGs")
    p.add_argument("--checkpoint", required=True, help="our .safetensors or the official .pth")
    p.add_argument("--rgb", help="RGB image FILE, DIR or GLOB (quote globs); or use --bag")
    p.add_argument("--depth",
                   help="depth FILE, DIR or GLOB (png/tiff/npy/npz), paired with rgb by name: a glob pairs by "
                        "what its wildcards match, and a role word (a_rgb / a_depth) is ignored")
    p.add_argument("--labels", help="ground-truth label FILE|DIR|GLOB for the panel (optional)")
    p.add_argument("--labels-base", choices=("one_based", "zero_based"), default="one_based",
                   help="ground truth on disk: one_based (0 = void, i = class i-1) or zero_based (255 void)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--depth-unit", type=float, default=None,
                   help="metres per stored depth value; default: float files (tiff/npy/npz) are metres, "
                        "16-bit PNGs millimetres, 8-bit files refused")
    p.add_argument("--normalization", help="preset name (default: the checkpoint's)")
    p.add_argument("--size", type=_parse_hw, help="run the model at HxW (default: each image's own size)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    _flag(p, "--optimize", "pick the fastest exact backend first (slower start)")
    _flag(p, "--overlay", "also write <name>_overlay.png")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay weight of the prediction")
    _flag(p, "--panel", "also write <name>_panel.png (rgb|depth|pred|gt)")
    _flag(p, "--attention", "also write <name>_attention.png (LAFS maps)")
    _flag(p, "--save-labels", "also write <name>_labels.png (class indices)")
    _add_threads(p)
    add_rerun_options(p)
    _add_progress(p)
    add_robot_args(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    from asymformer.data.io import resolve_depth_unit
    from asymformer.deploy.predict import pair_files, predict_files, predict_summary
    from asymformer.deploy.segmenter import Segmenter

    _check_out_dir(args.out)
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be between 0 and 1 (the prediction's weight in the overlay), got {args.alpha}")
    # options that would do nothing: refused, never silently ignored
    if args.labels and not args.panel:
        raise CLIError("--labels are drawn as the panel's ground-truth column: add --panel (or drop --labels)")
    if args.alpha != 0.5 and not args.overlay and not args.bag:  # bags get an overlay topic by default
        raise CLIError("--alpha is the prediction's weight in the overlay: add --overlay (or drop --alpha)")
    if args.alpha != 0.5 and args.bag and "overlay" not in args.outputs:
        raise CLIError("--alpha is the prediction's weight in the overlay topic: add overlay to --outputs (or drop "
                       "--alpha)")
    if args.depth_unit is not None:
        resolve_depth_unit(None, args.depth_unit, "--depth-unit", arg="--depth-unit")
    if args.size is not None and min(args.size) < 32:
        raise CLIError(f"--size must be at least 32x32, got {args.size[0]}x{args.size[1]}")
    _apply_threads(args)
    if args.bag:
        return run_bags(args)
    check_file_mode(args)
    pairs = pair_files(args.rgb, args.depth, args.labels)
    seg = Segmenter(args.checkpoint, device=args.device, normalization=args.normalization,
                    size=args.size, optimize=args.optimize, precision=args.precision)
    view = open_rerun_view(args, seg)
    with view if view is not None else contextlib.nullcontext():
        s = predict_files(seg, pairs, args.out, depth_unit=args.depth_unit, overlay=args.overlay,
                          panel=args.panel, attention=args.attention, save_labels=args.save_labels,
                          alpha=args.alpha, labels_base=args.labels_base, progress=args.progress,
                          intrinsics=args.intrinsics, max_depth=args.max_depth, view=view, overwrite=args.overwrite)
    print(predict_summary(s))
    if s["frames_without_depth"]:
        names = s["frames_without_depth"]
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        print(f"{len(names)} frames had no valid depth at all ({shown}): segmented from colour alone; see predict.json")
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="export to ONNX (checked with ONNX Runtime)")
    p.add_argument("--checkpoint", required=True, help="our .safetensors or the official .pth")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="file format")
    p.add_argument("--out", required=True, help="output .onnx file")
    _add_size(p, None, "input size of the exported graph, >= 32 a side",
              "the size the checkpoint was validated at, else 480x640, as evaluate")
    _add_batch_size(p, "input batch of the exported graph")
    _flag(p, "--dynamic", "dynamic batch, height and width")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    _flag(p, "--check", "compare the file with PyTorch in ONNX Runtime", default=True)
    _flag(p, "--int8", "write an INT8-quantised model (ONNX Runtime quantisation)")
    p.add_argument("--calibration-data", metavar="DIR",
                   help="with --int8: dataset folder for calibration frames (default: synthetic rooms)")
    p.add_argument("--calibration-frames", type=_positive, help="with --int8: frames to use (default 32)")
    p.add_argument("--int8-weights", choices=("auto", "7", "8"), default=None,
                   help="with --int8: 8-bit weights need a CPU with VNNI (avx512_vnni / avx_vnni / amx_int8), 7-bit "
                        "run right on every x86-64 CPU (default auto: what this CPU needs; pass 7 for a robot "
                        "without VNNI)")
    _add_threads(p)
    _add_progress(p)
    p.set_defaults(func=_run_export)


def _run_export(args):
    from asymformer.deploy.accel.export import export_onnx
    from asymformer.models import load_model
    from asymformer.models.info import input_size

    if args.size is not None and min(args.size) < 32:
        raise CLIError(f"--size must be at least 32x32, got {args.size[0]}x{args.size[1]}")
    _apply_threads(args)
    if not args.out.lower().endswith(".onnx"):  # before loading the model, not after
        raise CLIError(f"--out {args.out} must end in .onnx")
    model = load_model(args.checkpoint)
    args.size, source = input_size(model.info, args.size)
    if source != "argument":
        print(f"export size {args.size[0]}x{args.size[1]}: {source}; --size HxW to choose", file=sys.stderr)
    if args.int8:
        return _run_export_int8(args, model)
    if args.calibration_data or args.calibration_frames or args.int8_weights:
        raise CLIError("--calibration-data, --calibration-frames and --int8-weights are for --int8 exports: "
                       "add --int8")
    try:
        r = export_onnx(model, args.out, height=args.size[0], width=args.size[1], batch=args.batch_size,
                        dynamic=args.dynamic, opset=args.opset, check=args.check)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    shape = "dynamic batch/height/width" if r["dynamic"] else "x".join(map(str, r["export_shape"]))
    print(f"wrote {r['path']} ({r['bytes'] / 1e6:.1f} MB, opset {r['opset']}, {shape}; inputs rgb, depth -> logits)")
    for c in r.get("checks", []):
        print(f"ONNX Runtime check at {'x'.join(map(str, c['shape']))}: max |diff| vs PyTorch "
              f"{c['max_abs_diff']:.2e} <= 1e-4: OK")
    return 0


def _run_export_int8(args, model):
    from asymformer.deploy.accel.quantize import export_int8

    if args.dynamic:
        raise CLIError("--int8 exports a static shape; drop --dynamic and pass --size HxW")
    try:
        r = export_int8(model, args.out, height=args.size[0], width=args.size[1], batch=args.batch_size,
                        calibration_data=args.calibration_data, calibration_frames_num=args.calibration_frames or 32,
                        check=args.check, progress=args.progress, weight_bits=args.int8_weights)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    s = r["int8_scheme"]
    runs_on = "any x86-64 CPU" if s["weight_bits"] == 7 else "CPUs with VNNI (avx512_vnni, avx_vnni, amx_int8) only"
    print(f"wrote {r['path']} ({r['bytes'] / 1e6:.1f} MB, INT8, {'x'.join(map(str, r['shape']))}; "
          f"calibration: {r['calibration']}; {s['weight_bits']}-bit weights for {runs_on})")
    if "check" in r:
        print(f"INT8 vs FP32 on {r['check']['frames']} calibration frames: pixel agreement "
              f"{r['check']['pixel_agreement']:.2%}, max |diff| {r['check']['max_abs_diff']:.3g}")
    return 0


def _add_benchmark(sub):
    p = sub.add_parser("benchmark", help="measure latency of inference backends")
    p.add_argument("--checkpoint", help="weights to time (default: an untrained --model, same speed)")
    p.add_argument("--model", default=None, help="variant when no checkpoint is given (default asymformer_b0_t; "
                   "`asymformer info` lists them)")
    _add_size(p, (480, 640), "input size")
    _add_batch_size(p, "input batch")
    p.add_argument("--backends", default=None,
                   help="comma list (eager, fused, channels_last, jit, compile, onnxruntime, onnxruntime-int8, "
                        "cpu-bf16, openvino, openvino-int8, openvino-bf16, cuda-fp32, cuda-fp16, cuda-bf16, "
                        "cuda-graphs, cuda-compile, tensorrt) or all / cpu / cuda")
    p.add_argument("--precision", choices=("fp32", "int8", "bf16"), default="fp32",
                   help="int8 / bf16: also time the path Segmenter(precision=...) would choose on this CPU (the "
                        "fastest one agreeing with FP32 on synthetic rooms), beside FP32 (default: fused); "
                        "int8 / bf16 backends named in --backends limit the candidates")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per backend first")
    p.add_argument("--iters", type=_positive, default=10, help="timed calls per backend")
    _add_threads(p)
    _flag(p, "--compare", "print a table with ratios to eager instead of the JSON")
    p.add_argument("--device", help="GPU for the CUDA backends, e.g. cuda:1 (default cuda:0)")
    p.add_argument("--out", help="also write the JSON here")
    _add_progress(p)
    p.set_defaults(func=_run_benchmark)


def _reduced_precision_path(model, args, candidates=None):
    """The INT8 / bf16 path this CPU gets (agreement-gated; among `candidates` when --backends names
    some), or one line saying why none and what would help."""
    from asymformer.deploy.optimize import optimize_for_inference

    if args.progress:
        print(f"benchmark: choosing the {args.precision} path (agreement with FP32 on synthetic rooms) ...",
              file=sys.stderr, flush=True)
    try:
        return optimize_for_inference(model, "cpu", args.size[0], args.size[1], batch=args.batch_size,
                                      precision=args.precision, iters=1, candidates=candidates)
    except ValueError as exc:
        from asymformer.deploy.cpu import cpu_info

        raise CLIError(f"--precision {args.precision} refused on this CPU ({cpu_info()['model'] or 'unknown'}): "
                       f"{exc}") from None


def _precision_summary(precision, chosen, results) -> dict:
    """The chosen reduced-precision path beside FP32: its gate report, the CPU's INT8 format, the ratio."""
    from asymformer.deploy.cpu import int8_scheme

    mine, fp32 = results.get(chosen.backend, {}), results.get("fused", {})
    ratio = (round(mine["median_ms"] / fp32["median_ms"], 3)
             if "median_ms" in mine and "median_ms" in fp32 else None)
    out = {"precision": precision, "chosen": chosen.backend, "vs_fused_fp32": ratio, "candidates": chosen.report}
    if precision == "int8":
        out["int8_scheme"] = int8_scheme()
    return out


def _run_benchmark(args):
    import json

    from asymformer.deploy.benchmark import DEFAULT_BACKENDS, compare, measured, run_benchmark

    _check_out_file(args.out)  # before the run, not after minutes of timing
    if args.warmup < 0:
        raise CLIError(f"--warmup must be >= 0, got {args.warmup}")
    if args.backends is not None and not args.backends.replace(",", "").strip():
        raise CLIError("--backends is empty; give a comma list of backends, or all / cpu / cuda")
    if min(args.size) < 32:
        raise CLIError(f"--size must be at least 32x32, got {args.size[0]}x{args.size[1]}")
    _apply_threads(args)
    if args.checkpoint:
        from asymformer.models import load_model

        model = load_model(args.checkpoint)
        if args.model is not None and model.info.name != args.model:
            raise CLIError(f"--checkpoint {args.checkpoint} is {model.info.name} but --model says {args.model}: "
                           "give one of them (a checkpoint decides its variant)")
    else:
        from asymformer.models import create_model

        model = create_model(args.model or "asymformer_b0_t")
    backends, extra, chosen = args.backends or DEFAULT_BACKENDS, None, None
    if args.precision != "fp32":
        from asymformer.deploy.accel.lowp import CANDIDATES

        pool = CANDIDATES[args.precision]
        named = [b.strip() for b in (args.backends or "").split(",") if b.strip()]
        chosen = _reduced_precision_path(model, args, [b for b in named if b in pool] or None)
        extra = {chosen.backend: chosen}
        backends = ",".join(b for b in named if b not in pool) or "fused"  # the FP32 side
    report = run_benchmark(model, backends, height=args.size[0], width=args.size[1],
                           batch=args.batch_size, warmup=args.warmup, iters=args.iters, progress=args.progress,
                           device=args.device, extra=extra)
    if chosen is not None:
        report["precision"] = _precision_summary(args.precision, chosen, report["results"])
    if args.out:
        from asymformer.files import write_json

        write_json(args.out, report)
    print("\n".join(compare(report)) if args.compare else json.dumps(report, indent=1))
    for line in report.get("warnings", []):
        print(f"benchmark: warning: {line}", file=sys.stderr)
    if not measured(report):
        print("benchmark: no backend could be measured here (each is listed as skipped with the reason)",
              file=sys.stderr)
        return 1
    return 0
