"""The `asymformer` command line.

Each subcommand is one `_add_<name>` function that builds its parser and sets `func`; the
work itself lives in engine/, deploy/ and data/. Imports happen inside the handlers so
`asymformer --help` stays fast and a missing optional dependency only affects its command.
"""

from __future__ import annotations

import argparse
import os
import sys

from asymformer import __version__
from asymformer.deprecation import notice


class CLIError(Exception):
    """An error whose message is meant for the user, printed without a traceback."""


# Exit status: 0 finished; EXIT_STOPPED when training stopped resumably (signal, --time-limit,
# --stop-after) so a job script can requeue `asymformer train --resume RUN`; 2 for bad input or a
# failed run (the message says what to fix); 130 when a second Ctrl-C aborted.
EXIT_STOPPED = 75  # EX_TEMPFAIL in sysexits.h: "try again later"
EXIT_ERROR = 2


def _at_least(minimum: int):
    """argparse type for whole numbers >= minimum, with one message naming the rule."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive = _at_least(1)  # counts and sizes
_non_negative = _at_least(0)  # data workers, prediction counts


def _check_out_file(path: str | None, flag: str = "--out") -> None:
    """A file output must not be a folder and its folder must be creatable (checked before long work)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise CLIError(f"{flag} {path} is a folder; give a file name, e.g. {os.path.join(path, 'benchmark.json')}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"{flag} {path}: {parent} is a file, not a folder")


def _check_out_dir(path: str | None, flag: str = "--out") -> None:
    """A folder output must not be an existing file."""
    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"{flag} {path} is an existing file; give a folder")


def _parse_hw(text: str) -> tuple[int, int]:
    """Parse 'HxW' (e.g. 480x640) into (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 480x640, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


# --------------------------------------------------------------------------- one vocabulary
# Every command spells a concept the same way: --size HxW, --batch-size, --depth-unit, on/off
# options as --x / --no-x, --progress / --no-progress on every long command. The 0.1 spellings
# are hidden aliases that print one deprecation line to stderr and set the new option's value.
_OLD_ON_OFF = ("--expect-counts",)  # 0.1 took `on` / `off` values; now --x / --no-x


def _deprecated(old: str, new: str) -> None:
    print(f"asymformer: {notice(old, new)}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse that also reads 0.1's `--expect-counts on|off` (now --expect-counts / --no-expect-counts).

    Subparsers are built with the same class, so each rewrites only the options it owns.
    """

    def parse_known_args(self, args=None, namespace=None):
        args, i = list(sys.argv[1:] if args is None else args), 0
        while i < len(args):
            name, _, value = args[i].partition("=")
            if name in _OLD_ON_OFF and name in self._option_string_actions:
                if not value and i + 1 < len(args) and args[i + 1] in ("on", "off"):
                    value = args.pop(i + 1)
                if value in ("on", "off"):
                    args[i] = name if value == "on" else f"--no-{name[2:]}"
                    _deprecated(f"{name} {value}", args[i])
            i += 1
        return super().parse_known_args(args, namespace)


class _OldName(argparse.Action):
    """A 0.1 spelling of another option: hidden from --help; prints the notice, then sets its value."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecated(option_string, self.new)
        setattr(namespace, self.dest, values)


class _OldSide(_OldName):
    """0.1's --height / --width: one side of --size HxW."""

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecated(option_string, self.new)
        h, w = getattr(namespace, self.dest)
        setattr(namespace, self.dest, (values, w) if option_string == "--height" else (h, values))


def _flag(p, name: str, help: str, default=False) -> None:
    """An on/off option as --x / --no-x; default None means "the config file's value"."""
    help += " (default on)" if default is True else ""
    p.add_argument(name, action=argparse.BooleanOptionalAction, default=default, help=help)


def _add_progress(p, default=True) -> None:
    _flag(p, "--progress", "progress bars (--no-progress for logs and scripts)", default)


def _add_size(p, default: tuple[int, int], help: str) -> None:
    p.add_argument("--size", type=_parse_hw, default=default, metavar="HxW",
                   help=f"{help} (default {default[0]}x{default[1]})")
    for old in ("--height", "--width"):
        p.add_argument(old, dest="size", type=_positive, action=_OldSide, new="--size HxW")


def _add_batch_size(p, help: str) -> None:
    p.add_argument("--batch-size", type=_positive, default=1, help=f"{help} (default 1)")
    p.add_argument("--batch", dest="batch_size", type=_positive, action=_OldName, new="--batch-size")


# --------------------------------------------------------------------------- info (models)
def _add_info(sub):
    p = sub.add_parser("info", help="list model variants with parameters and GMACs")
    _add_size(p, (480, 640), "input size the GMACs are counted at")
    p.add_argument("--num-classes", type=_positive, default=40)
    _flag(p, "--json", "print JSON instead of a table")
    p.set_defaults(func=_run_info)


def _run_info(args):
    import json

    from asymformer.models import model_info

    (h, w) = args.size
    rows = model_info(height=h, width=w, num_classes=args.num_classes)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'variant':<28}{'params':>14}{'GMACs':>10}{'G (+attn)':>12}   @ {h}x{w}")
    for r in rows:
        print(f"{r['name']:<28}{r['params']:>14,}{r['gmacs']:>10.2f}{r['gmacs_with_attention']:>12.2f}")
    return 0


# --------------------------------------------------------------------------- prepare (data)
def _add_prepare(sub):
    p = sub.add_parser("prepare", help="convert a dataset download into the layout asymformer loads")
    psub = p.add_subparsers(dest="dataset", required=True)
    _add_prepare_nyuv2(psub)
    _add_prepare_sunrgbd(psub)
    _add_prepare_synthetic(psub)


def _add_prepare_nyuv2(psub):
    p = psub.add_parser("nyuv2", help="NYUv2 from nyu_depth_v2_labeled.mat",
                        description="Write images/, depths/ (uint16 mm), labels/ (0 void, 1..40), "
                                    "train.txt (795), test.txt (654) and dataset.json. Resumable.")
    p.add_argument("--mat", required=True, help="nyu_depth_v2_labeled.mat (MATLAB v7.3, 2.8 GB)")
    p.add_argument("--splits", required=True, help="splits.mat (trainNdxs / testNdxs)")
    p.add_argument("--mapping", required=True, help="classMapping40.mat (894 -> 40 classes)")
    p.add_argument("--out", required=True, help="output folder (open it with open_dataset)")
    p.add_argument("--classes", type=int, choices=(40, 13), default=40,
                   help="label set: 40 (default) or 13 (NYUv2-13, needs --mapping13)")
    p.add_argument("--mapping13", help="class13Mapping.mat (40 -> 13 classes, with the 13 names)")
    _flag(p, "--raw-depth", "also write raw_depths/ (not in-painted)")
    _flag(p, "--overwrite", "rewrite frames that already exist")
    _add_progress(p)
    p.set_defaults(func=_run_prepare_nyuv2)


def _run_prepare_nyuv2(args):
    from asymformer.data.prepare_nyuv2 import prepare_nyuv2

    stats = prepare_nyuv2(args.mat, args.splits, args.mapping, args.out, raw_depth=args.raw_depth,
                          overwrite=args.overwrite, classes=args.classes, mapping13=args.mapping13,
                          progress=args.progress)
    print(f"NYUv2 ready in {stats['out']}: {stats['train']} train / {stats['test']} test "
          f"({stats['written']} frames written, {stats['skipped']} already done)")
    return 0


def _add_prepare_sunrgbd(psub):
    p = psub.add_parser("sunrgbd", help="SUNRGBD from the toolbox files",
                        description="Write the custom layout (rgb/, depth/ uint16 mm, labels/ 0 void "
                                    "1..37, classes.json, train.txt 5285, test.txt 5050) at native size.")
    p.add_argument("--root", required=True, help="the SUNRGBD folder (holding kv1/, kv2/, realsense/, xtion/)")
    p.add_argument("--meta", required=True, help="SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat")
    p.add_argument("--seg", required=True, help="SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat (v7.3)")
    p.add_argument("--split", required=True, help="SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat")
    p.add_argument("--out", required=True, help="output folder (open it with open_dataset)")
    p.add_argument("--depth", choices=("filled", "raw"), default="filled",
                   help="filled: the toolbox's depth_bfx/ (like NYUv2's in-painted depths, default); "
                        "raw: depth/")
    _flag(p, "--expect-counts", "check the official 5285 / 5050 split sizes", default=True)
    _flag(p, "--overwrite", "rewrite samples that already exist")
    _add_progress(p)
    p.set_defaults(func=_run_prepare_sunrgbd)


def _run_prepare_sunrgbd(args):
    from asymformer.data.prepare_sunrgbd import prepare_sunrgbd

    stats = prepare_sunrgbd(args.root, args.meta, args.seg, args.split, args.out,
                            depth=args.depth, expect_counts=args.expect_counts,
                            overwrite=args.overwrite, progress=args.progress)
    print(f"SUNRGBD ready in {stats['out']}: {stats['train']} train / {stats['test']} test "
          f"({stats['written']} samples written, {stats['skipped']} already done)")
    return 0


def _add_prepare_synthetic(psub):
    p = psub.add_parser("synthetic", help="procedural synthetic RGB-D rooms",
                        description="Render rooms into the custom layout (rgb/, depth/ uint16 mm, labels/ "
                                    "one-based, classes.json, train.txt, test.txt). Frames depend only "
                                    "on (seed, index).")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train-frames", type=_positive, help="number of training frames (required)")
    p.add_argument("--num", dest="train_frames", type=_positive, action=_OldName, new="--train-frames")
    p.add_argument("--test-frames", type=_non_negative, help="test frames (default max(1, train frames // 4))")
    p.add_argument("--num-test", dest="test_frames", type=_non_negative, action=_OldName, new="--test-frames")
    _add_size(p, (240, 320), "frame size")
    p.add_argument("--seed", type=_non_negative, default=0)
    _flag(p, "--overwrite", "write into a folder that holds a dataset")
    _add_progress(p)
    p.set_defaults(func=_run_prepare_synthetic)


def _run_prepare_synthetic(args):
    from asymformer.data.synthetic import GEOMETRY_ONLY_CLASSES, write_synthetic_dataset

    if args.train_frames is None:
        raise CLIError("--train-frames N is required (the number of training frames)")
    num_test = max(1, args.train_frames // 4) if args.test_frames is None else args.test_frames
    (h, w) = args.size
    info = write_synthetic_dataset(args.out, args.train_frames, num_test, h, w, args.seed,
                                   overwrite=args.overwrite, progress=args.progress)
    print(f"wrote {info['train']} train + {info['test']} test frames ({h}x{w}, "
          f"seed {args.seed}) to {info['root']}")
    print(f"classes ({len(info['classes'])}): {', '.join(info['classes'])}; depth-only to tell apart: "
          f"{', '.join(GEOMETRY_ONLY_CLASSES)}")
    return 0


# --------------------------------------------------------------------------- train / evaluate (engine)
def _add_data_options(p):
    """Flags that say how to read a dataset when its release cannot say it (docs/data.md)."""
    p.add_argument("--classes", type=int, help="label set of releases with several (NYUv2: 40 or 13)")
    p.add_argument("--sensors", help="SUNRGBD subset, comma list of kv1,kv2,realsense,xtion")
    p.add_argument("--depth-unit", type=float, help="metres per stored depth value (overrides the layout's)")
    p.add_argument("--depth-encoding", choices=("linear", "sunrgbd_rotated", "matplotlib_greys_r"),
                   help="how depth values are stored (overrides the layout's)")


def _data_options(args) -> dict:
    keys = ("classes", "sensors", "depth_unit", "depth_encoding")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _add_train(sub):
    p = sub.add_parser("train", help="train a model (paper recipe by default)",
                       description="Defaults are the paper recipe; precedence: defaults < --config file < flags. "
                                   "Multi-GPU: torchrun --nproc_per_node N -m asymformer train ...")
    p.add_argument("--data", help="dataset root (any supported layout) or synthetic:N_TRAIN:N_TEST")
    p.add_argument("--out", help="run directory (config, logs, checkpoints, curves.png)")
    p.add_argument("--config", help="YAML or JSON file of TrainConfig settings")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run to the end of its plan "
                   "(--epochs N extends it; --lr, --grad-clip, --workers, --device, --data may change)")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="fine-tune: start from a model file (official .pth or our .safetensors, any class "
                        "count); the classifier is re-initialised when the class count differs")
    p.add_argument("--model", help="variant name (asymformer list: see `asymformer info`)")
    p.add_argument("--layout", help="dataset layout (default auto)")
    _add_data_options(p)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch (split over processes)")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--crop-size", type=_parse_hw, help="HxW, e.g. 480x640")
    p.add_argument("--base-size", type=_parse_hw, help="HxW the images are resized to before augmentation")
    p.add_argument("--eval-size", type=_parse_hw, help="HxW for validation")
    p.add_argument("--workers", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--val-every", type=int, help="validate every K epochs (0: never)")
    p.add_argument("--save-every", type=int, help="keep checkpoints/epoch_NNN every K epochs (0: never)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"))
    _flag(p, "--compile", "torch.compile the model (default: the config's, else off)", None)
    _flag(p, "--channels-last", "channels-last memory format for model and inputs (default: the config's, "
          "else off)", None)
    p.add_argument("--grad-clip", type=float, help="max gradient norm (0: off)")
    p.add_argument("--pretrained-rgb", help="ImageNet ConvNeXt weights for the RGB branch")
    p.add_argument("--pretrained-depth", help="weights for the depth (MiT) branch")
    _flag(p, "--zero-depth", "ablation: feed zeros as depth (default: the config's, else off)", None)
    p.add_argument("--seed", type=int)
    _flag(p, "--deterministic", "deterministic algorithms where torch has them (default: the config's, "
          "else off)", None)
    p.add_argument("--stop-after", type=int, help="stop resumably after this global iteration (this "
                   "invocation only)")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop resumably after this much wall time (e.g. a cluster job's limit)")
    _add_progress(p, None)
    p.set_defaults(func=_run_train)


_TRAIN_FLAGS = ("data", "out", "model", "layout", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                "crop_size", "base_size", "eval_size", "workers", "device", "val_every", "save_every", "amp",
                "compile", "channels_last", "grad_clip", "pretrained_rgb", "pretrained_depth", "zero_depth",
                "seed", "deterministic", "stop_after", "time_limit", "progress", "init_from")


def _run_train(args):
    from asymformer.engine import resolve_config, train
    from asymformer.engine.distributed import is_main

    overrides = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    overrides["data_options"] = _data_options(args) or None
    if args.resume:
        if args.config:
            raise CLIError("--resume continues the saved config.json; do not pass --config with it")
        result = train(resume=args.resume, overrides=overrides)
    else:
        result = train(resolve_config(args.config, overrides))
    if is_main():
        best = result["best_miou"]
        print(f"{result['status']} at iteration {result['iteration']}/{result['total_iterations']}"
              + (f", best mIoU {best:.4f}" if best is not None else "") + f"; run: {result['run_dir']}")
        if result["status"] == "stopped":
            print(f"continue with: {result['resume_command']}")
        split = result.get("best_selected_on")
        if best is not None and split in ("test", "testing"):
            print(f"note: best.safetensors was selected on the {split} split (no separate validation split), "
                  f"so its {split} score is optimistic; last.safetensors involves no selection")
    return EXIT_STOPPED if result["status"] == "stopped" else 0


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="evaluate a checkpoint: mIoU, accuracy, per-class IoU")
    p.add_argument("--checkpoint", required=True, help="our .safetensors file or the official .pth")
    p.add_argument("--data", required=True, help="dataset root (or synthetic:N_TRAIN:N_TEST)")
    p.add_argument("--split", default="test")
    p.add_argument("--layout", default="auto")
    _add_data_options(p)
    p.add_argument("--out", help="directory for results.json, per-class IoU and confusion-matrix PNGs")
    p.add_argument("--scales", default="1.0", help="comma-separated, e.g. 1.0,1.2,1.4 (default: official 1.0)")
    _flag(p, "--flip", "add horizontally flipped passes")
    p.add_argument("--size", type=_parse_hw, default=None,
                   help="HxW input size (default: the size the checkpoint was validated at, else 480x640)")
    _flag(p, "--native-resolution", "score at each label's own size (logits upsampled) instead of at --size")
    _add_batch_size(p, "images per forward pass")
    p.add_argument("--workers", type=_non_negative, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    _flag(p, "--zero-depth", "feed zeros as depth (ablation)")
    p.add_argument("--precision", choices=("fp32", "int8", "bf16"), default="fp32",
                   help="int8 / bf16: evaluate through that CPU deployment path (measure its accuracy cost)")
    p.add_argument("--save-predictions", type=_non_negative, default=0, metavar="N",
                   help="write <name>.png (dataset colours) and <name>_labels.png (class indices, as "
                        "predict --save-labels) of the first N images to OUT/predictions")
    _add_progress(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from pathlib import Path

    if not Path(args.checkpoint).is_file():
        raise CLIError(f"checkpoint not found: {args.checkpoint}")
    if args.save_predictions and not args.out:
        raise CLIError("--save-predictions needs --out DIR")
    _check_out_dir(args.out)
    from asymformer.engine.evaluate import evaluate_checkpoint, format_table

    wrap = None
    if args.precision != "fp32":
        import functools

        from asymformer.deploy.optimize import wrap_for_evaluation

        if args.device not in ("auto", "cpu") or args.amp != "none":
            raise CLIError(f"--precision {args.precision} runs on the CPU without --amp; use --device cpu")
        args.device = "cpu"
        wrap = functools.partial(wrap_for_evaluation, precision=args.precision, batch=args.batch_size)
    results = evaluate_checkpoint(args.checkpoint, args.data, split=args.split, layout=args.layout, out=args.out,
                                  scales=args.scales, flip=args.flip, size=args.size, batch_size=args.batch_size,
                                  workers=args.workers, device=args.device, amp=args.amp,
                                  zero_depth=args.zero_depth, save_predictions=args.save_predictions,
                                  data_options=_data_options(args), native_resolution=args.native_resolution,
                                  wrap=wrap, progress=args.progress)
    print(format_table(results))
    if args.out:
        print(f"reports in {args.out}")
    return 0


# --------------------------------------------------------------------------- predict / export / benchmark (deploy)
def _add_predict(sub):
    p = sub.add_parser("predict", help="segment RGB-D files and write colourised PNGs")
    p.add_argument("--checkpoint", required=True, help="our .safetensors or the official .pth")
    p.add_argument("--rgb", required=True, help="RGB image FILE, DIR or GLOB (quote globs)")
    p.add_argument("--depth", required=True,
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
    _add_progress(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    from asymformer.data.io import resolve_depth_unit
    from asymformer.deploy.predict import pair_files, predict_files
    from asymformer.deploy.segmenter import Segmenter

    _check_out_dir(args.out)
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be between 0 and 1 (the prediction's weight in the overlay), got {args.alpha}")
    if args.depth_unit is not None:
        resolve_depth_unit(None, args.depth_unit, "--depth-unit", arg="--depth-unit")
    pairs = pair_files(args.rgb, args.depth, args.labels)
    seg = Segmenter(args.checkpoint, device=args.device, normalization=args.normalization,
                    size=args.size, optimize=args.optimize)
    s = predict_files(seg, pairs, args.out, depth_unit=args.depth_unit, overlay=args.overlay,
                      panel=args.panel, attention=args.attention, save_labels=args.save_labels,
                      alpha=args.alpha, labels_base=args.labels_base, progress=args.progress)
    print(f"{s['frames']} frames -> {s['outputs']}  segmenter {s['segmenter_fps']} FPS "
          f"({s['segmenter_ms_per_frame']} ms/frame incl. pre/post-processing, {s['backend']} on {s['device']}), "
          f"with file I/O {s['end_to_end_fps']} FPS; model-only speed: asymformer benchmark")
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="export to ONNX (checked with ONNX Runtime)")
    p.add_argument("--checkpoint", required=True, help="our .safetensors or the official .pth")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", required=True, help="output .onnx file")
    _add_size(p, (480, 640), "input size of the exported graph, >= 32 a side")
    _add_batch_size(p, "input batch of the exported graph")
    _flag(p, "--dynamic", "dynamic batch, height and width")
    p.add_argument("--opset", type=int, default=17)
    _flag(p, "--check", "compare the file with PyTorch in ONNX Runtime", default=True)
    _flag(p, "--int8", "write an INT8-quantised model (ONNX Runtime quantisation)")
    p.add_argument("--calibration-data", metavar="DIR",
                   help="with --int8: dataset folder for calibration frames (default: synthetic rooms)")
    p.add_argument("--calibration-frames", type=_positive, default=32, help="with --int8: frames to use (default 32)")
    _add_progress(p)
    p.set_defaults(func=_run_export)


def _run_export(args):
    from asymformer.deploy.export import export_onnx
    from asymformer.models import load_model

    if min(args.size) < 32:
        raise CLIError(f"--size must be at least 32x32, got {args.size[0]}x{args.size[1]}")
    model = load_model(args.checkpoint)
    if args.int8:
        return _run_export_int8(args, model)
    if args.calibration_data:
        raise CLIError("--calibration-data is for --int8 exports")
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
    from asymformer.deploy.quantize import export_int8

    if args.dynamic:
        raise CLIError("--int8 exports a static shape; drop --dynamic and pass --size HxW")
    try:
        r = export_int8(model, args.out, height=args.size[0], width=args.size[1], batch=args.batch_size,
                        calibration_data=args.calibration_data, calibration_frames_num=args.calibration_frames,
                        check=args.check, progress=args.progress)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {r['path']} ({r['bytes'] / 1e6:.1f} MB, INT8, {'x'.join(map(str, r['shape']))}; "
          f"calibration: {r['calibration']})")
    if "check" in r:
        print(f"INT8 vs FP32 on {r['check']['frames']} calibration frames: pixel agreement "
              f"{r['check']['pixel_agreement']:.2%}, max |diff| {r['check']['max_abs_diff']:.3g}")
    return 0


def _add_benchmark(sub):
    p = sub.add_parser("benchmark", help="measure latency of inference backends")
    p.add_argument("--checkpoint", help="weights to time (default: an untrained --model, same speed)")
    p.add_argument("--model", default="asymformer_b0_t", help="variant when no checkpoint is given")
    _add_size(p, (480, 640), "input size")
    _add_batch_size(p, "input batch")
    p.add_argument("--backends", default=None,
                   help="comma list (eager, fused, channels_last, jit, compile, onnxruntime, onnxruntime-int8, "
                        "cpu-bf16, openvino, openvino-int8, openvino-bf16, cuda-fp32, cuda-fp16, cuda-bf16, "
                        "cuda-graphs, cuda-compile, tensorrt) or all / cpu / cuda")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=_positive, default=10)
    p.add_argument("--threads", type=_positive, help="torch / ONNX Runtime CPU threads (default: torch's)")
    _flag(p, "--compare", "print a table with ratios to eager instead of the JSON")
    p.add_argument("--device", help="GPU for the CUDA backends, e.g. cuda:1 (default cuda:0)")
    p.add_argument("--out", help="also write the JSON here")
    _add_progress(p)
    p.set_defaults(func=_run_benchmark)


def _run_benchmark(args):
    import json

    import torch

    from asymformer.deploy.benchmark import DEFAULT_BACKENDS, compare, measured, run_benchmark

    _check_out_file(args.out)  # before the run, not after minutes of timing
    if args.warmup < 0:
        raise CLIError(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        from asymformer.models import load_model

        model = load_model(args.checkpoint)
    else:
        from asymformer.models import create_model

        model = create_model(args.model)
    report = run_benchmark(model, args.backends or DEFAULT_BACKENDS, height=args.size[0], width=args.size[1],
                           batch=args.batch_size, warmup=args.warmup, iters=args.iters, progress=args.progress,
                           device=args.device)
    if args.out:
        from asymformer.files import write_json

        write_json(args.out, report)
    print("\n".join(compare(report)) if args.compare else json.dumps(report, indent=1))
    if not measured(report):
        print("benchmark: no backend could be measured here (each is listed as skipped with the reason)",
              file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- demo
def _add_demo(sub):
    p = sub.add_parser("demo", help="synthetic data -> train -> evaluate -> predict -> report",
                       description="Generate synthetic RGB-D rooms, train asymformer_b0_a on the CPU for a "
                                   "bounded time, evaluate, predict test frames and write OUT/report.html.")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--minutes", type=float, default=8.0, help="total time budget (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="fixed number of epochs instead of fitting the time budget")
    p.add_argument("--size", type=_parse_hw, help="HxW of the synthetic rooms (default 96x128)")
    p.add_argument("--train-frames", type=int, help="number of training rooms (default 320)")
    p.add_argument("--test-frames", type=int, help="number of test rooms (default 64)")
    p.add_argument("--threads", type=_positive, help="torch CPU threads (default: torch's choice)")
    _flag(p, "--quick", "seconds-long smoke run (tiny data, no b0_t timing)")
    _add_progress(p)
    p.set_defaults(func=_run_demo)


def _run_demo(args):
    import shlex

    from asymformer.demo import run_demo

    extra = [f"--{k.replace('_', '-')} {v}" for k, v in (("epochs", args.epochs), ("threads", args.threads),
                                                         ("train_frames", args.train_frames),
                                                         ("test_frames", args.test_frames)) if v is not None]
    extra += ([f"--size {args.size[0]}x{args.size[1]}"] if args.size else []) + ["--quick"] * args.quick
    command = " ".join([f"asymformer demo --out {shlex.quote(args.out)} --minutes {args.minutes:g} "
                        f"--seed {args.seed}", *extra])
    r = run_demo(args.out, minutes=args.minutes, seed=args.seed, quick=args.quick, epochs=args.epochs,
                 size=args.size, n_train=args.train_frames, n_test=args.test_frames, threads=args.threads,
                 progress=args.progress, command=command)
    print(f"mIoU {r['miou']:.4f} on {r['evaluation']['num_images']} test rooms (never trained on; they also "
          f"picked the best checkpoint) after "
          f"{r['training']['iterations']} iterations; {r['wall_seconds']:.0f} s in all")
    print(f"report: {args.out}/report.html")
    return 0


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="asymformer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"asymformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_info, _add_prepare, _add_train, _add_evaluate, _add_predict, _add_export,
                _add_benchmark, _add_demo):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError, IsADirectoryError,
            FloatingPointError) as exc:
        if os.environ.get("ASYMFORMER_DEBUG"):
            raise
        print(f"asymformer {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
