"""Evaluation with the field's protocol, plus reports.

Default = the official single-scale protocol: 480x640 input, one confusion matrix over the whole
set, void excluded. Multi-scale sums the logits of the scaled inputs resized back to the label
size (the repository's 1.0/1.2/1.4 gives 480x640, 576x768, 672x896); flip adds mirrored passes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .metrics import ConfusionMatrix


@torch.no_grad()
def predict_logits(model, rgb, depth, out_size, scales=(1.0,), flip=False, dtype=None):
    """Summed logits (B×K×H×W at out_size) over scales and optional horizontal flips."""
    h, w = rgb.shape[-2:]
    total = None
    for s in scales:
        size = (max(32, round(h * s)), max(32, round(w * s)))
        r = rgb if size == (h, w) else F.interpolate(rgb, size, mode="bilinear", align_corners=False)
        d = depth if size == (h, w) else F.interpolate(depth, size, mode="nearest")  # no valid/invalid blending
        passes = [(r, d, False)] + ([(r.flip(-1), d.flip(-1), True)] if flip else [])
        for ri, di, flipped in passes:
            with torch.autocast(rgb.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(ri, di)
            logits = logits.float()
            if flipped:
                logits = logits.flip(-1)
            if tuple(logits.shape[-2:]) != tuple(out_size):
                logits = F.interpolate(logits, out_size, mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
    return total


@torch.no_grad()
def evaluate_model(model, loader, num_classes: int, device, *, scales=(1.0,), flip=False, dtype=None,
                   zero_depth=False, progress=True, on_batch=None) -> ConfusionMatrix:
    """Accumulate the confusion matrix of `model` over `loader` (model left in eval mode)."""
    model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    for batch in tqdm(loader, desc="evaluate", disable=not progress, dynamic_ncols=True):
        rgb, depth = batch["rgb"].to(device), batch["depth"].to(device)
        label = batch["label"].to(device)
        if zero_depth:
            depth = torch.zeros_like(depth)
        logits = predict_logits(model, rgb, depth, label.shape[-2:], scales, flip, dtype)
        pred = logits.argmax(1)
        cm.update(pred, label)
        if on_batch is not None:
            on_batch(batch, pred)
    return cm


def parse_scales(text) -> tuple[float, ...]:
    if isinstance(text, (list, tuple)):
        values = [float(v) for v in text]
    else:
        try:
            values = [float(v) for v in str(text).split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--scales: expected numbers like 1.0,1.2,1.4, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"--scales: expected positive numbers like 1.0,1.2,1.4, got {text!r}")
    return tuple(values)


def evaluate_checkpoint(checkpoint, data, *, split="test", layout="auto", out=None, scales=(1.0,),
                        flip=False, size=(480, 640), batch_size=1, workers=2, device="auto",
                        amp="none", zero_depth=False, save_predictions=0, progress=True, wrap=None) -> dict:
    """Load a checkpoint (ours or the official .pth), evaluate it on `data`, write reports to `out`.

    `wrap(model) -> module` swaps in another inference path (the CLI's --precision int8/bf16 passes
    deploy's); its `precision` and `backend` attributes are recorded in the results.
    """
    import asymformer
    from asymformer.data import EvalTransform

    from .builders import amp_dtype, eval_loader, open_split
    from .distributed import resolve_device

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    if not str(data).startswith("synthetic:") and not Path(data).is_dir():
        raise FileNotFoundError(f"dataset directory not found: {data}")
    scales = parse_scales(scales)
    dev = resolve_device(device)
    model = asymformer.load_model(str(checkpoint)).to(dev)
    ds = open_split(str(data), split, layout, seed=0, size=size)
    if model.num_classes != ds.num_classes:
        raise ValueError(f"{checkpoint} predicts {model.num_classes} classes but {data} ({split}) has "
                         f"{ds.num_classes}: evaluate it on the dataset it was trained for")
    norm = model.normalization or ds.normalization
    ds.transform = EvalTransform(size=tuple(size), normalization=norm)
    loader = eval_loader(ds, batch_size, workers, dev)
    writer = _PredictionWriter(out, ds.colors, save_predictions) if out and save_predictions else None
    inference = {"precision": "fp32", "backend": "pytorch"}
    if wrap is not None:
        model = wrap(model)
        inference = {"precision": model.precision, "backend": model.backend}
    cm = evaluate_model(model, loader, ds.num_classes, dev, scales=scales, flip=flip,
                        dtype=amp_dtype(amp, dev), zero_depth=zero_depth, progress=progress,
                        on_batch=writer)
    results = {**cm.compute(), "checkpoint": str(checkpoint), "data": str(data), "split": split,
               "num_images": len(ds), "size": list(size), "scales": list(scales), "flip": bool(flip),
               "class_names": list(ds.class_names), "normalization": norm, **inference}
    if out:
        write_reports(results, cm.mat.cpu().numpy(), ds.class_names, ds.colors, out)
    return results


class _PredictionWriter:
    """Colourised predictions of the first `limit` images into OUT/predictions/."""

    def __init__(self, out, colors, limit: int):
        self.dir = Path(out) / "predictions"
        self.colors, self.limit, self.count = np.asarray(colors, np.uint8), int(limit), 0

    def __call__(self, batch, pred):
        from PIL import Image

        from asymformer import viz

        for name, p in zip(batch["name"], pred.cpu().numpy()):
            if self.count >= self.limit:
                return
            rgb = self.colors[np.clip(p, 0, len(self.colors) - 1)]
            viz.save_image(Image.fromarray(rgb), self.dir / f"{Path(str(name)).name}.png")
            self.count += 1


def write_reports(results: dict, confusion: np.ndarray, class_names, colors, out) -> dict:
    """results.json, per_class_iou.csv, per_class_iou.png and confusion_matrix.png in `out`."""
    from asymformer import viz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**results, "confusion_matrix": np.asarray(confusion).astype(int).tolist()}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, out / "results.json")
    lines = ["class,iou,acc"] + [f"{n},{'' if i is None else f'{i:.6f}'},{'' if a is None else f'{a:.6f}'}"
                                 for n, i, a in zip(class_names, results["per_class_iou"],
                                                    results["per_class_acc"])]
    (out / "per_class_iou.csv").write_text("\n".join(lines) + "\n")
    title = f"per-class IoU (mIoU {results['miou']:.4f})"
    viz.save_image(viz.bar_chart(class_names, results["per_class_iou"], title, colors=colors),
                   out / "per_class_iou.png")
    viz.save_image(viz.heatmap(confusion, labels=class_names, title="confusion matrix"),
                   out / "confusion_matrix.png")
    return {"results": out / "results.json", "bar": out / "per_class_iou.png",
            "confusion": out / "confusion_matrix.png"}


def format_table(results: dict) -> str:
    """A plain-text per-class IoU table for the terminal."""
    rows = [f"{'class':<24}{'IoU':>8}{'acc':>8}"]
    for n, i, a in zip(results["class_names"], results["per_class_iou"], results["per_class_acc"]):
        rows.append(f"{n:<24}{'n/a' if i is None else f'{i:.4f}':>8}{'n/a' if a is None else f'{a:.4f}':>8}")
    rows.append(f"mIoU {results['miou']:.4f}   pixel acc {results['pixel_acc']:.4f}   "
                f"mean class acc {results['mean_acc']:.4f}   ({results['num_images']} images)")
    return "\n".join(rows)
