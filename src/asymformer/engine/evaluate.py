"""Evaluation with the field's protocol, plus reports.

Default = the official single-scale protocol: 480x640 input, one confusion matrix over the whole
set, void excluded. Multi-scale sums the logits of the scaled inputs resized back to the input
size with align_corners=True as the authors' MS5_eval.py does (the repository's 1.0/1.2/1.4
gives 480x640, 576x768, 672x896); flip adds mirrored passes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from asymformer import viz
from asymformer.files import atomic_write_text, make_folder, save_image, write_json
from asymformer.models.info import input_size
from asymformer.progress import progress_bar

from .metrics import ConfusionMatrix


@torch.no_grad()
def predict_logits(model, rgb, depth, out_size, scales=(1.0,), flip=False, dtype=None, ms_align_corners=True):
    """Summed logits (B×K×H×W at out_size) over scales and optional horizontal flips.

    As the authors' MS5_eval.py: each scaled pass is resized back to the input size with
    bilinear `align_corners=True` (ms_align_corners), depth is resized nearest (never blending
    valid and invalid depth), and the sum is argmax'ed. A single-scale pass is only resized to
    out_size (align_corners=False, as the Segmenter does) when the label size differs.
    """
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
            if tuple(logits.shape[-2:]) != (h, w):
                logits = F.interpolate(logits, (h, w), mode="bilinear", align_corners=ms_align_corners)
            total = logits if total is None else total + logits
    if tuple(total.shape[-2:]) != tuple(out_size):
        total = F.interpolate(total, out_size, mode="bilinear", align_corners=False)
    return total


@torch.no_grad()
def evaluate_model(model, loader, num_classes: int, device, *, scales=(1.0,), flip=False, dtype=None,
                   zero_depth=False, progress=True, on_batch=None) -> ConfusionMatrix:
    """Accumulate the confusion matrix of `model` over `loader` (model left in eval mode)."""
    model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    for batch in progress_bar(loader, desc="evaluate", unit="batch", enabled=progress):
        rgb, depth = batch["rgb"].to(device), batch["depth"].to(device)
        label = batch["label"].to(device)
        if zero_depth:
            depth = torch.zeros_like(depth)
        logits = predict_logits(model, rgb, depth, label.shape[-2:], scales, flip, dtype)
        pred = logits.argmax(1)
        cm.update(pred, label)
        if on_batch is not None:
            on_batch(batch, pred, logits)
    return cm


MIN_SCALE, MAX_SCALE = 0.25, 4.0  # 4x of 480x640 is already 1920x2560; 100x would exhaust any memory


def parse_scales(text) -> tuple[float, ...]:
    if isinstance(text, (list, tuple)):
        values = [float(v) for v in text]
    else:
        try:
            values = [float(v) for v in str(text).split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--scales: expected numbers like 1.0,1.2,1.4, got {text!r}") from None
    if not values or any(not MIN_SCALE <= v <= MAX_SCALE for v in values):  # also rejects nan/inf
        raise ValueError(f"--scales: expected factors between {MIN_SCALE} and {MAX_SCALE} like 1.0,1.2,1.4 (the "
                         f"input size is multiplied by each), got {text!r}")
    return tuple(values)


def evaluate_checkpoint(checkpoint, data, *, split="test", layout="auto", out=None, scales=(1.0,),
                        flip=False, size=None, batch_size=1, workers=2, device="auto", amp="none",
                        zero_depth=False, save_predictions=0, progress=True, data_options=None,
                        native_resolution=False, wrap=None, figure_format="png") -> dict:
    """Load a checkpoint (ours or the official .pth), evaluate it on `data`, write reports to `out`.

    size None: the size the checkpoint was validated at (`model.info.eval_size`), else 480×640.
    native_resolution: score at each label's own size (logits upsampled), not at `size`.
    data_options: open_dataset keywords (classes, sensors, depth_unit, depth_encoding).
    `wrap(model, size=(H, W)) -> module` swaps in another inference path (the CLI's --precision
    int8/bf16 passes deploy's); its `precision` and `backend` attributes are recorded in the results.
    figure_format: png, pdf or svg for the confusion matrix and per-class IoU figures in `out`.
    """
    import asymformer
    from asymformer.data import EvalTransform

    from .builders import amp_dtype, eval_loader, open_split
    from .distributed import bind_device

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    if not str(data).startswith("synthetic:") and not Path(data).is_dir():
        raise FileNotFoundError(f"dataset directory not found: {data}")
    scales = parse_scales(scales)
    dev = bind_device(device)
    model = asymformer.load_model(str(checkpoint)).to(dev)
    size, size_source = input_size(model.info, size)  # the one rule, shared with export
    ds = open_split(str(data), split, layout, seed=0, size=size, options=data_options)
    if model.num_classes != ds.num_classes:
        raise ValueError(f"{checkpoint} predicts {model.num_classes} classes but {data} ({split}) has "
                         f"{ds.num_classes}: evaluate it on the dataset it was trained for")
    norm = model.info.normalization or ds.normalization
    ds.transform = EvalTransform(size=tuple(size), normalization=norm, keep_label=native_resolution)
    loader = eval_loader(ds, 1 if native_resolution else batch_size, workers, dev)
    hooks = _BatchHooks(out, ds, save_predictions)
    inference, source = {"precision": "fp32", "backend": "pytorch"}, model
    if wrap is not None:
        model = wrap(model, size=tuple(size))
        inference = {"precision": model.precision, "backend": model.backend}
    cm = evaluate_model(model, loader, ds.num_classes, dev, scales=scales, flip=flip,
                        dtype=amp_dtype(amp, dev), zero_depth=zero_depth, progress=progress,
                        on_batch=hooks)
    if int(cm.mat.sum()) == 0:
        raise ValueError(f"{data} ({split}): none of the {len(ds)} images has a labelled pixel (every label is "
                         "void), so there is nothing to score; check the label files and their convention "
                         "(one-based files: 0 = void)")
    results = {**cm.compute(), "checkpoint": str(checkpoint), "data": str(data), "split": split,
               "num_images": len(ds), "size": list(size), "size_source": size_source,
               "scored_at": "label's native resolution" if native_resolution else f"{size[0]}x{size[1]}",
               "scales": list(scales), "flip": bool(flip), "class_names": list(ds.class_names),
               "normalization": norm, **inference, **hooks.per_sensor_results()}
    selected = source.info.selected_on_split
    if selected is not None:
        results["checkpoint_selected_on_split"] = selected
        if selected == split:
            results["warning"] = (f"this checkpoint was selected as best on the {split} split it is evaluated "
                                  f"on: the score is optimistic, not a held-out result")
    if out:
        write_reports(results, cm.mat.cpu().numpy(), ds.class_names, ds.colors, out, figure_format)
    return results



class _BatchHooks:
    """Per-batch work besides the confusion matrix: per-sensor scores, saved predictions.

    Saved predictions follow `predict --save-labels`: OUT/predictions/<name>.png (dataset
    palette) and <name>_labels.png (class indices), at the frame's own size: the logits are
    upsampled bilinearly as the Segmenter does, so both commands give the same labels.
    """

    def __init__(self, out, ds, limit: int):
        self.dir = Path(out) / "predictions" if out else None
        self.colors, self.limit, self.count = ds.colors, int(limit or 0), 0
        sensors = getattr(ds, "sensors", None)
        self.sensor_of = dict(zip(ds.names, sensors)) if sensors else {}
        self.num_classes, self.per_sensor, self.class_names = ds.num_classes, {}, list(ds.class_names)

    def __call__(self, batch, pred, logits):
        names = [str(n) for n in batch["name"]]
        if self.sensor_of:
            for i, name in enumerate(names):
                sensor = self.sensor_of.get(name)
                if sensor not in self.per_sensor:
                    self.per_sensor[sensor] = [ConfusionMatrix(self.num_classes, device=pred.device), 0]
                self.per_sensor[sensor][0].update(pred[i], batch["label"][i].to(pred.device))
                self.per_sensor[sensor][1] += 1
        if self.dir is not None and self.count < self.limit:
            self._save(names, batch, logits)

    def _save(self, names, batch, logits):
        from asymformer.data.io import write_png

        if self.count == 0:
            save_image(viz.legend(self.class_names, self.colors), self.dir / "legend.png")
        for i, name in enumerate(names):
            if self.count >= self.limit:
                return
            lg = logits[i:i + 1]
            frame = tuple(int(v) for v in batch["frame_size"][i]) if "frame_size" in batch else lg.shape[-2:]
            if tuple(lg.shape[-2:]) != frame:
                lg = F.interpolate(lg, size=frame, mode="bilinear", align_corners=False)
            labels = lg.argmax(1)[0].cpu().numpy().astype(np.uint8)
            write_png(self.dir / f"{name}.png", viz.colorize(labels, self.colors))
            write_png(self.dir / f"{name}_labels.png", labels)
            self.count += 1

    def per_sensor_results(self) -> dict:
        if not self.per_sensor:
            return {}
        out = {}
        for sensor, (cm, n) in sorted(self.per_sensor.items(), key=lambda kv: str(kv[0])):
            m = cm.compute()
            out[str(sensor)] = {k: m[k] for k in ("miou", "miou_all_classes", "pixel_acc", "mean_acc")} | {
                "num_images": n}
        return {"per_sensor": out}


def write_reports(results: dict, confusion: np.ndarray, class_names, colors, out, figure_format: str = "png") -> dict:
    """results.json, per_class_iou.csv and the figures per_class_iou.FMT and confusion_matrix.FMT in `out`.

    Figures are drawn with matplotlib (asymformer.figures: named axes, row-normalised matrix with a
    colour bar, sorted bars); without it, PNGs from viz.py and one line naming the extra."""
    from asymformer import figures

    figure_format = figures.check_format(figure_format)
    out = Path(out)
    make_folder(out)
    payload = _no_nan({**results, "confusion_matrix": np.asarray(confusion).astype(int).tolist()})
    write_json(out / "results.json", payload)
    lines = ["class,iou,acc"] + [f"{n},{'' if i is None else f'{i:.6f}'},{'' if a is None else f'{a:.6f}'}"
                                 for n, i, a in zip(class_names, results["per_class_iou"],
                                                    results["per_class_acc"])]
    atomic_write_text(out / "per_class_iou.csv", "\n".join(lines) + "\n")
    title = f"per-class IoU (mIoU {results['miou']:.4f})"
    bar, confusion_path = out / f"per_class_iou.{figure_format}", out / f"confusion_matrix.{figure_format}"
    if figures.available():
        miou = results["miou"] if results["miou"] is not None and math.isfinite(results["miou"]) else None
        figures.save_figure(figures.iou_bars_figure(class_names, results["per_class_iou"], colors, miou, title), bar)
        figures.save_figure(figures.confusion_figure(confusion, class_names), confusion_path)
    else:
        if figure_format != "png":
            raise ImportError(f"--figure-format {figure_format}: {figures._MISSING}")
        print(f"note: plain PNG charts in {out}; {figures._MISSING} for labelled, paper-ready figures",
              file=sys.stderr)
        save_image(viz.bar_chart(class_names, results["per_class_iou"], title, colors=colors), bar)
        save_image(viz.heatmap(confusion, labels=class_names, title="confusion matrix"), confusion_path)
    return {"results": out / "results.json", "bar": bar, "confusion": confusion_path}


def _no_nan(obj):
    """JSON has no NaN: undefined numbers (no valid pixel) become null."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_nan(v) for v in obj]
    return obj


def format_table(results: dict) -> str:
    """A plain-text per-class IoU table for the terminal."""
    rows = [f"{'class':<24}{'IoU':>8}{'acc':>8}"]
    for n, i, a in zip(results["class_names"], results["per_class_iou"], results["per_class_acc"]):
        rows.append(f"{n:<24}{'n/a' if i is None else f'{i:.4f}':>8}{'n/a' if a is None else f'{a:.4f}':>8}")
    rows.append(f"mIoU {results['miou']:.4f}   pixel acc {results['pixel_acc']:.4f}   "
                f"mean class acc {results['mean_acc']:.4f}   ({results['num_images']} images)")
    if "miou_all_classes" in results:
        rows.append(f"mIoU over all {len(results['class_names'])} classes (authors' definition) "
                    f"{results['miou_all_classes']:.4f}   over classes present in the labels "
                    f"{results['miou_present']:.4f}")
    for sensor, m in results.get("per_sensor", {}).items():
        rows.append(f"  {sensor:<12} mIoU {m['miou']:.4f}   pixel acc {m['pixel_acc']:.4f}   "
                    f"({m['num_images']} images)")
    if "warning" in results:
        rows.append(f"warning: {results['warning']}")
    return "\n".join(rows)
