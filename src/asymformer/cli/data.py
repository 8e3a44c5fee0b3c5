"""`asymformer info` and `asymformer prepare nyuv2 | sunrgbd | synthetic`: models and datasets."""

from __future__ import annotations

from .common import (
    CLIError,
    _add_progress,
    _add_size,
    _flag,
    _non_negative,
    _OldName,
    _positive,
)


# --------------------------------------------------------------------------- info (models)
def _add_info(sub):
    p = sub.add_parser("info", help="list model variants with parameters and GMACs",
                       description="Model variants, smallest first: parameters, and multiply-accumulates of one "
                                   "forward pass (batch 1) at --size, without and with the attention products.")
    _add_size(p, (480, 640), "input size the GMACs are counted at")
    p.add_argument("--num-classes", type=_positive, default=40, help="classes of the classifier counted")
    _flag(p, "--json", "print JSON instead of a table")
    p.set_defaults(func=_run_info)


def _run_info(args):
    import json
    import textwrap

    from asymformer.models import model_info

    (h, w) = args.size
    rows = sorted(model_info(height=h, width=w, num_classes=args.num_classes), key=lambda r: (r["gmacs"], r["params"]))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'variant':<28}{'params':>14}{'GMACs':>10}{'GMACs+attn':>12}")
    for r in rows:
        print(f"{r['name']:<28}{r['params']:>14,}{r['gmacs']:>10.2f}{r['gmacs_with_attention']:>12.2f}")
    note = (f"per forward pass at {h}x{w}, batch 1, {args.num_classes} classes, smallest first. GMACs: billions of "
            "multiply-accumulates in convolutions and linear layers (the usual FLOP count, /2); GMACs+attn adds the "
            "attention products (QK^T, softmax x V) that most counters skip. asymformer_b0_t is the released network.")
    print("\n" + textwrap.fill(note, 100, break_on_hyphens=False))
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
    p.add_argument("--train-frames", type=_positive, metavar="N", help="number of training frames (required)")
    p.add_argument("--num", dest="train_frames", type=_positive, action=_OldName, new="--train-frames")
    p.add_argument("--test-frames", type=_non_negative, help="test frames (default max(1, train frames // 4))")
    p.add_argument("--num-test", dest="test_frames", type=_non_negative, action=_OldName, new="--test-frames")
    _add_size(p, (240, 320), "frame size")
    p.add_argument("--seed", type=_non_negative, default=0, help="rooms depend only on (seed, frame index)")
    _flag(p, "--overwrite", "write into a folder that holds a dataset")
    _add_progress(p)
    # --train-frames is required, but argparse cannot require it and still accept its 0.1 alias --num:
    # the handler checks it, and the usage line shows it as required.
    p.usage = p.format_usage().removeprefix("usage: ").replace("[--train-frames N]", "--train-frames N").rstrip()
    p.set_defaults(func=_run_prepare_synthetic)


def _run_prepare_synthetic(args):
    from asymformer.data.synthetic import GEOMETRY_ONLY_CLASSES, write_synthetic_dataset

    if args.train_frames is None:
        raise CLIError("--train-frames N is required (the number of training frames)")
    num_test = max(1, args.train_frames // 4) if args.test_frames is None else args.test_frames
    (h, w) = args.size
    if min(h, w) < 32:  # what training and evaluation take as --base-size / --eval-size
        raise CLIError(f"--size must be at least 32x32 (the smallest size training and evaluation take), got {h}x{w}")
    info = write_synthetic_dataset(args.out, args.train_frames, num_test, h, w, args.seed,
                                   overwrite=args.overwrite, progress=args.progress)
    print(f"wrote {info['train']} train + {info['test']} test frames ({h}x{w}, "
          f"seed {args.seed}) to {info['root']}")
    print(f"classes ({len(info['classes'])}): {', '.join(info['classes'])}; depth-only to tell apart: "
          f"{', '.join(GEOMETRY_ONLY_CLASSES)}")
    return 0
