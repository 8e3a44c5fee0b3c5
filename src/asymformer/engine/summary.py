"""The start-up summary of a run and the warnings about plans that cannot work as intended.

Printed before the first step, so a wrong split, a CPU fallback or a warm-up longer than the
whole run is seen in the first second of a multi-day job, not after it.
"""

from __future__ import annotations

from tqdm import tqdm


def native_size(dataset) -> tuple[int, int] | None:
    """Height and width of the first stored image (before any resizing), or None if unreadable."""
    try:
        rgb = dataset.load_sample(0)["rgb"]
    except Exception:  # noqa: BLE001 - a summary must never stop the run; the loader reports bad files
        return None
    return int(rgb.shape[0]), int(rgb.shape[1])


def warnings_for(config, *, total: int, warmup: int, size: tuple[int, int] | None, synthetic: bool) -> list[str]:
    """Plans that run but do not do what the user most likely meant."""
    out = []
    if warmup > total:
        out.append(f"the warm-up ({warmup} iterations, --warmup-epochs {config.warmup_epochs:g}) is longer than the "
                   f"whole run ({total} iterations): the lr never reaches --lr {config.lr:g}; lower --warmup-epochs")
    if size is not None and not synthetic:
        bh, bw = config.base_size
        if size[0] * 2 <= bh or size[1] * 2 <= bw:
            out.append(f"the images are {size[0]}x{size[1]} but --base-size is {bh}x{bw} (the paper's NYUv2 size): "
                       f"every image is upscaled {max(bh / size[0], bw / size[1]):.1f}x before augmentation; for "
                       f"this data use --base-size {size[0]}x{size[1]} (and a --crop-size / --eval-size no larger)")
    out += _crop_padding(config)
    return out


def _crop_padding(config) -> list[str]:
    """A crop far larger than the resized images is mostly padding (void pixels): wasted compute."""
    (ch, cw), (bh, bw) = config.crop_size, config.base_size
    scale = sum(config.scale_range) / 2
    filled = min(1.0, bh * scale / ch) * min(1.0, bw * scale / cw)
    if filled >= 0.5:
        return []
    return [f"--crop-size {ch}x{cw} is far larger than the images resized to --base-size {bh}x{bw}: about "
            f"{1 - filled:.0%} of each training crop is padding, computed for nothing; use a --crop-size no larger "
            f"than --base-size"]


def describe_init(path, report: dict) -> str:
    """One line on what --init-from loaded and what it had to leave at its fresh initialisation."""
    line = f"init from {path}: {len(report['loaded'])} tensors loaded"
    if report["reinitialised"]:
        line += (f", classifier re-initialised for the new class count ({', '.join(report['reinitialised'])})")
    if report["unused"]:
        line += f", {len(report['unused'])} tensors of the file unused ({', '.join(report['unused'][:3])})"
    return line


def summary_lines(run, config, *, size, init_report=None) -> list[str]:
    """Human-readable lines describing the run `run` (a train._Run) is about to do."""
    layout = getattr(run.train_ds, "layout", None) or type(run.train_ds).__name__
    n_val = len(run.val_ds) if run.val_ds is not None else 0
    val = f"{config.val_split} {n_val}" if run.val_ds is not None else "validation off"
    dev = f"{run.device}" + (f" x {run.world} processes" if run.world > 1 else "")
    precision = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}[config.amp]
    lines = [
        f"run {run.out}: {config.model}, {run.num_classes} classes "
        f"({', '.join(run.model.info.class_names[:6])}{', ...' if run.num_classes > 6 else ''})",
        f"data {config.data} ({layout}): {config.train_split} {len(run.train_ds)}, {val}"
        + (f"; images {size[0]}x{size[1]}" if size else "")
        + f", base {config.base_size[0]}x{config.base_size[1]}, crop {config.crop_size[0]}x{config.crop_size[1]}",
        f"device {dev}, {precision}; batch {config.batch_size}" + (f" ({run.batch} per process)" if run.world > 1
                                                                  else ""),
        f"{run.ipe} iterations per epoch x {config.epochs} epochs = {run.total} iterations; warm-up "
        f"{run.scheduler.warmup_iters} iterations; lr {config.lr:g}" + (f"; resuming at iteration {run.iteration}"
                                                                        if run.iteration else ""),
    ]
    if init_report is not None:
        lines.append(init_report)
    return lines


def announce(run) -> None:
    """Print the summary, the notices and the warnings; warnings also go to the run's notices (log)."""
    c = run.config
    size = native_size(run.train_ds)
    lines = summary_lines(run, c, size=size, init_report=run.init_report)
    warn = warnings_for(c, total=run.total, warmup=run.scheduler.warmup_iters, size=size,
                        synthetic=c.data.startswith("synthetic:"))
    for line in lines + [f"notice: {n}" for n in run.notices] + [f"warning: {w}" for w in warn]:
        tqdm.write(line)
    run.notices += [f"warning: {w}" for w in warn]
