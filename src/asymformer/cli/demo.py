"""`asymformer demo`: synthetic rooms -> train -> evaluate -> predict -> report."""

from __future__ import annotations

from .common import (
    CLIError,
    _add_progress,
    _check_out_dir,
    _flag,
    _non_negative,
    _parse_hw,
    _positive,
)


# --------------------------------------------------------------------------- demo
def _add_demo(sub):
    p = sub.add_parser("demo", help="synthetic data -> train -> evaluate -> predict -> report",
                       description="Generate synthetic RGB-D rooms, train asymformer_b0_a on the CPU for a "
                                   "bounded time, evaluate, predict test frames and write OUT/report.html.")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--minutes", type=float, default=8.0, help="total time budget (default 8)")
    p.add_argument("--seed", type=_non_negative, default=0, help="seed of the rooms and the training")
    p.add_argument("--epochs", type=_positive, help="fixed number of epochs instead of fitting the time budget")
    p.add_argument("--size", type=_parse_hw, help="HxW of the synthetic rooms (default 96x128)")
    p.add_argument("--train-frames", type=_positive, help="number of training rooms (default 320)")
    p.add_argument("--test-frames", type=_positive, help="number of test rooms (default 64)")
    p.add_argument("--threads", type=_positive, help="torch CPU threads (default: torch's choice)")
    _flag(p, "--quick", "short smoke run, a few minutes on 2 CPU cores (tiny data, no b0_t timing)")
    _add_progress(p)
    p.set_defaults(func=_run_demo)


def _run_demo(args):
    import shlex

    from asymformer.demo import run_demo

    _check_out_dir(args.out)
    if not 0 < args.minutes < float("inf"):
        raise CLIError(f"--minutes must be positive (a number of minutes), got {args.minutes}")
    if args.size is not None and min(args.size) < 32:
        raise CLIError(f"--size must be at least 32x32, got {args.size[0]}x{args.size[1]}")
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
