"""Figures for reports and papers, drawn with matplotlib: confusion matrix, per-class IoU, training curves.

Each `*_figure` function returns a matplotlib Figure (tests inspect its axes, labels and values);
`save_figure` writes it atomically as PNG, PDF or SVG. matplotlib is an optional extra
(`pip install 'asymformer[figures]'`), imported inside the functions with the Agg backend, so
nothing here opens a window or needs a display. Label images keep `viz.py`'s palette; this
module only draws charts. A leaf: imports nothing from asymformer but `files`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

FIGURE_FORMATS = ("png", "pdf", "svg")
ANNOTATE_MAX_CLASSES = 20  # beyond this a cell is too small for a readable number
_MISSING = "figures need matplotlib: pip install 'asymformer[figures]'"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(_MISSING) from None
    matplotlib.use("Agg", force=False)  # no display on a robot or a cluster node
    from matplotlib.figure import Figure

    return Figure


def check_format(fmt: str) -> str:
    fmt = str(fmt).lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format {fmt!r} is not supported; choose {', '.join(FIGURE_FORMATS)}")
    return fmt


def row_normalized(confusion) -> np.ndarray:
    """Each true class's row as fractions of its pixels (rows without pixels stay 0)."""
    cm = np.asarray(confusion, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def confusion_figure(confusion, class_names, title: str = "confusion matrix"):
    """Row-normalised confusion matrix: true class down, predicted class across, both named,
    a colour bar in [0, 1], and the fraction in each cell when the classes are few enough to read."""
    Figure = _pyplot()
    norm = row_normalized(confusion)
    k = norm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    side = min(16.0, max(5.0, 0.38 * k + 2.5))
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(k), labels=names, rotation=90 if k > 6 else 45, ha="center" if k > 6 else "right",
                  fontsize=8 if k > 15 else 10)
    ax.set_yticks(range(k), labels=names, fontsize=8 if k > 15 else 10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title} (each row sums to 1)")
    fig.colorbar(image, ax=ax, label="fraction of the true class's pixels", shrink=0.8)
    if k <= ANNOTATE_MAX_CLASSES:
        for i in range(k):
            for j in range(k):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7 if k > 10 else 9,
                            color="white" if norm[i, j] > 0.5 else "black")
    return fig


def iou_bars_figure(class_names, ious, colors=None, miou: float | None = None, title: str = "per-class IoU"):
    """Horizontal bars of per-class IoU, best first, named, in the classes' own colours; classes
    without pixels (IoU None / NaN) are listed last as "n/a"; a dashed line marks the mIoU."""
    Figure = _pyplot()
    vals = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in ious]
    order = sorted(range(len(vals)), key=lambda i: (vals[i] is None, -(vals[i] or 0.0)))
    names = [str(class_names[i]) for i in order]
    heights = [vals[i] or 0.0 for i in order]
    if colors is not None:
        rgb = np.asarray(colors, dtype=np.float64) / 255.0
        bar_colors = [tuple(rgb[i]) for i in order]
    else:
        bar_colors = ["tab:blue"] * len(order)
    fig = Figure(figsize=(7.0, max(2.5, 0.28 * len(order) + 1.2)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(order))
    ax.barh(y, heights, color=bar_colors, edgecolor="0.3", linewidth=0.5)
    ax.set_yticks(y, labels=names, fontsize=8 if len(order) > 20 else 10)
    ax.invert_yaxis()  # best at the top
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("IoU")
    ax.grid(axis="x", alpha=0.3)
    for yi, i in zip(y, order):
        ax.text((vals[i] or 0.0) + 0.01, yi, "n/a" if vals[i] is None else f"{vals[i]:.3f}", va="center", fontsize=8)
    if miou is not None and math.isfinite(miou):
        ax.axvline(miou, color="0.2", linestyle="--", linewidth=1, label=f"mIoU {miou:.4f}")
        ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


def curves_figure(records: list[dict]):
    """Training curves from a run's log records: loss and learning rate per iteration, validation
    mIoU per epoch with the best epoch marked (the one best.safetensors holds). None when the log
    has neither training nor validation records."""
    train = [r for r in records if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in records if r.get("kind") == "val" and r.get("miou") is not None]
    if not train and not val:
        return None
    Figure = _pyplot()
    panels = (["loss", "lr"] if train else []) + (["miou"] if val else [])
    fig = Figure(figsize=(5.0 * len(panels), 3.8))  # fixed margins: redrawn every epoch, layout engines cost seconds
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    fig.subplots_adjust(left=0.09 if len(panels) == 1 else 0.06, right=0.98, bottom=0.14, top=0.9, wspace=0.32)
    for ax, panel in zip(axes, panels):
        ax.grid(alpha=0.3)
        if panel == "loss":
            ax.plot([r["iteration"] for r in train], [r["loss"] for r in train], color="tab:blue", linewidth=1)
            ax.set(xlabel="iteration", ylabel="training loss", title="loss")
        elif panel == "lr":
            ax.plot([r["iteration"] for r in train], [r.get("lr") or 0.0 for r in train], color="tab:orange")
            ax.set(xlabel="iteration", ylabel="learning rate", title="learning rate")
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        else:
            epochs, mious = [r["epoch"] for r in val], [r["miou"] for r in val]
            ax.plot(epochs, mious, marker="o", markersize=3, color="tab:green")
            best = int(np.argmax(mious))
            ax.axvline(epochs[best], color="tab:red", linestyle="--", linewidth=1)
            ax.plot([epochs[best]], [mious[best]], marker="*", markersize=12, color="tab:red",
                    label=f"best: epoch {epochs[best]}, mIoU {mious[best]:.4f}")
            ax.set(xlabel="epoch", ylabel="validation mIoU", title="validation mIoU")
            ax.set_ylim(0.0, max(0.05, min(1.0, max(mious) * 1.15)))
            ax.legend(loc="lower right", fontsize=8)
    return fig


def save_figure(fig, path) -> Path:
    """Write `fig` atomically; the format is the path's extension (png, pdf or svg)."""
    from asymformer.files import atomic_write

    path = Path(path)
    fmt = check_format(path.suffix or "png")
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt, dpi=150 if fmt == "png" else None)
    return path
