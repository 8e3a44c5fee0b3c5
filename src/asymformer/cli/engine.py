"""`asymformer train` and `asymformer evaluate` (engine/)."""

from __future__ import annotations

from .common import (
    EXIT_STOPPED,
    CLIError,
    _add_batch_size,
    _add_figure_format,
    _add_progress,
    _add_threads,
    _apply_threads,
    _check_out_dir,
    _flag,
    _non_negative,
    _parse_hw,
)


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
    options = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if "depth_unit" in options:  # checked here so the message names the flag, as predict's does
        from asymformer.data.io import resolve_depth_unit

        resolve_depth_unit(None, options["depth_unit"], "--depth-unit", arg="--depth-unit")
    return options


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
    p.add_argument("--model", help="variant name, as `asymformer info` lists them (default asymformer_b0_t, the "
                   "released network; asymformer_b0_a / _p train on a CPU)")
    p.add_argument("--layout", help="dataset layout (default auto)")
    _add_data_options(p)
    # Defaults below are TrainConfig's (the paper recipe); written out so `--help` stays fast
    # without importing torch, and tests/test_cli_help.py checks they match.
    p.add_argument("--epochs", type=int, help="epochs to train (default 500)")
    p.add_argument("--batch-size", type=int, help="global batch, split over processes (default 8)")
    p.add_argument("--lr", type=float, help="peak learning rate of AdamW (default 5e-05)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up before the poly decay (default 4.0)")
    p.add_argument("--crop-size", type=_parse_hw, help="HxW of the training crops (default 480x640)")
    p.add_argument("--base-size", type=_parse_hw,
                   help="HxW the images are resized to before augmentation; smaller trains faster on a CPU "
                        "(default 480x640)")
    p.add_argument("--eval-size", type=_parse_hw, help="HxW for validation (default 480x640)")
    p.add_argument("--workers", type=int, help="data-loading processes (default min(4, CPU count))")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--val-every", type=int, help="validate every K epochs, 0: never (default 10)")
    p.add_argument("--save-every", type=int, help="keep checkpoints/epoch_NNN every K epochs, 0: never (default 50)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision on a GPU (default none)")
    _flag(p, "--compile", "torch.compile the model (default: the config's, else off)", None)
    _flag(p, "--channels-last", "channels-last memory format for model and inputs (default: the config's, "
          "else off)", None)
    p.add_argument("--grad-clip", type=float, help="max gradient norm, 0: off (default 0.0)")
    p.add_argument("--pretrained-rgb", help="ImageNet ConvNeXt weights for the RGB branch (default: none, "
                   "random initialisation)")
    p.add_argument("--pretrained-depth", help="weights for the depth (MiT) branch (default: none)")
    _flag(p, "--zero-depth", "ablation: feed zeros as depth (default: the config's, else off)", None)
    p.add_argument("--seed", type=int, help="seed of the initialisation and the data order (default 0)")
    _flag(p, "--deterministic", "deterministic algorithms where torch has them (default: the config's, "
          "else off)", None)
    p.add_argument("--stop-after", type=int, help="stop resumably after this global iteration (this "
                   "invocation only)")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop resumably after this much wall time (e.g. a cluster job's limit)")
    _flag(p, "--tensorboard", "also write TensorBoard logs to RUN_DIR/tensorboard: loss, LR, mIoU, per-class IoU "
          "and prediction panels; open with `tensorboard --logdir RUN_DIR` (default: the config's, else on)", None)
    _add_figure_format(p, None, "curves.FMT")
    _add_threads(p)
    _add_progress(p, None)
    p.set_defaults(func=_run_train)


_TRAIN_FLAGS = ("data", "out", "model", "layout", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                "crop_size", "base_size", "eval_size", "workers", "device", "val_every", "save_every", "amp",
                "compile", "channels_last", "grad_clip", "pretrained_rgb", "pretrained_depth", "zero_depth",
                "seed", "deterministic", "stop_after", "time_limit", "progress", "init_from", "tensorboard",
                "figure_format")


def _run_train(args):
    from asymformer.engine import resolve_config, train
    from asymformer.engine.distributed import is_main

    _apply_threads(args)
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
    p.add_argument("--split", default="test", help="split file to score (test, val, train, ...)")
    p.add_argument("--layout", default="auto", help="dataset layout, auto: detected from the files")
    _add_data_options(p)
    p.add_argument("--out", help="directory for results.json, per-class IoU and confusion-matrix PNGs")
    p.add_argument("--scales", default="1.0", help="comma-separated, e.g. 1.0,1.2,1.4 (default: official 1.0)")
    _flag(p, "--flip", "add horizontally flipped passes")
    p.add_argument("--size", type=_parse_hw, default=None,
                   help="HxW input size (default: the size the checkpoint was validated at, else 480x640)")
    _flag(p, "--native-resolution", "score at each label's own size (logits upsampled) instead of at --size")
    _add_batch_size(p, "images per forward pass")
    p.add_argument("--workers", type=_non_negative, default=2, help="data-loading processes (0: in this process)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="mixed precision on a GPU")
    _flag(p, "--zero-depth", "feed zeros as depth (ablation)")
    p.add_argument("--precision", choices=("fp32", "int8", "bf16"), default="fp32",
                   help="int8 / bf16: evaluate through that CPU deployment path (measure its accuracy cost)")
    p.add_argument("--save-predictions", type=_non_negative, default=0, metavar="N",
                   help="write <name>.png (dataset colours) and <name>_labels.png (class indices, as "
                        "predict --save-labels) of the first N images to OUT/predictions")
    _add_figure_format(p, "png", "confusion_matrix.FMT and per_class_iou.FMT")
    _add_threads(p)
    _add_progress(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from asymformer.models.weights import check_model_path

    check_model_path(args.checkpoint)
    if args.size is not None and min(args.size) < 32:
        raise CLIError(f"--size must be at least 32x32, got {args.size[0]}x{args.size[1]}")
    if args.save_predictions and not args.out:
        raise CLIError("--save-predictions needs --out DIR")
    _check_out_dir(args.out)
    _apply_threads(args)
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
                                  wrap=wrap, progress=args.progress, figure_format=args.figure_format)
    print(format_table(results))
    if args.out:
        print(f"reports in {args.out}")
    return 0
