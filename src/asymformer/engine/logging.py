"""Run logs: JSONL (every field), CSV (fixed columns for spreadsheets), TensorBoard if installed.

TensorBoard (`RUN_DIR/tensorboard`, open with `tensorboard --logdir RUN_DIR`): every numeric field
as a scalar (train/loss, train/lr, val/miou, ...), per-class IoU as val/iou/<class>, and a few
prediction panels (rgb | depth | prediction | ground truth) per validation under val/panel_N.

On resume the logs are cut back to the resumed iteration, so the curves never show the steps a
crash threw away twice.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from asymformer import viz
from asymformer.files import atomic_write, atomic_write_text, save_image

CSV_FIELDS = ["kind", "epoch", "iteration", "loss", "lr", "it_s", "miou", "pixel_acc", "mean_acc", "time"]


class RunLogger:
    """Appends records to RUN_DIR/log.jsonl and log.csv; optionally mirrors scalars to TensorBoard."""

    def __init__(self, run_dir, tensorboard: bool = True, resume_iteration: int | None = None, class_names=None):
        self.run_dir = Path(run_dir)
        self.class_names = list(class_names) if class_names is not None else None
        self.jsonl = self.run_dir / "log.jsonl"
        self.csv = self.run_dir / "log.csv"
        if resume_iteration is not None:
            self._truncate(resume_iteration)
        else:
            for p in (self.jsonl, self.csv):
                if p.exists():
                    p.unlink()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # On resume, TensorBoard hides what the crashed invocation logged after the saved
                # iteration, as the JSONL/CSV logs are cut back to it.
                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"),
                                        purge_step=None if resume_iteration is None else resume_iteration + 1)
            except ImportError:
                print("note: no TensorBoard logs (log.jsonl has everything): pip install 'asymformer[figures]' "
                      "for them", file=sys.stderr)
                self.tb = None

    def _truncate(self, iteration: int) -> None:
        records = [r for r in read_log(self.run_dir) if r.get("iteration", 0) <= iteration]
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in records))
        with atomic_write(self.csv, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(records)

    def log(self, record: dict) -> None:
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        new = not self.csv.exists()
        with open(self.csv, "a", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(record)
        if self.tb is not None:
            step = record.get("iteration", 0)
            kind = record.get("kind", "train")
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("epoch", "iteration"):
                    self.tb.add_scalar(f"{kind}/{key}", value, step)
            for i, value in enumerate(record.get("per_class_iou") or []):
                if value is not None:
                    name = self.class_names[i] if self.class_names and i < len(self.class_names) else str(i)
                    self.tb.add_scalar(f"{kind}/iou/{name}", value, step)
            self.tb.flush()

    def log_images(self, step: int, images: list) -> None:
        """H×W×3 uint8 images as val/panel_N at `step` (TensorBoard only; no-op without it)."""
        if self.tb is None:
            return
        for i, image in enumerate(images):
            self.tb.add_image(f"val/panel_{i}", np.asarray(image), step, dataformats="HWC")
        self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_log(run_dir) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash mid-write
                continue
    return out


def plot_curves(run_dir, figure_format: str = "png") -> Path | None:
    """RUN_DIR/curves.FMT: loss and learning rate per iteration, validation mIoU per epoch with the
    best epoch marked (matplotlib, asymformer.figures); a plain PNG from viz.py without matplotlib."""
    from asymformer import figures

    records = read_log(run_dir)
    path = Path(run_dir) / f"curves.{figures.check_format(figure_format)}"
    if figures.available():
        fig = figures.curves_figure(records)
        return None if fig is None else figures.save_figure(fig, path)
    train = [r for r in records if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in records if r.get("kind") == "val" and r.get("miou") is not None]
    if not train and not val:
        return None
    panels = []
    if train:
        panels.append(viz.line_chart({"loss": ([r["iteration"] for r in train], [r["loss"] for r in train])},
                                     title="training loss", xlabel="iteration", ylabel="loss"))
    if val:
        panels.append(viz.line_chart({"mIoU": ([r["epoch"] for r in val], [r["miou"] for r in val])},
                                     title="validation mIoU", xlabel="epoch", ylabel="mIoU"))
    path = path.with_suffix(".png")
    save_image(viz.stack(panels), path)
    return path


def prediction_panels(model, dataset, device, count: int = 3, zero_depth: bool = False) -> list:
    """rgb | depth | prediction | ground truth panels of the first `count` frames of `dataset`,
    as TensorBoard shows them: the model sees the transformed frame, the panel the raw one."""
    import torch
    import torch.nn.functional as F

    panels = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(min(count, len(dataset))):
                raw, sample = dataset.load_sample(i), dataset[i]
                depth = sample["depth"][None].to(device)
                logits = model(sample["rgb"][None].to(device), torch.zeros_like(depth) if zero_depth else depth)
                logits = F.interpolate(logits.float(), size=raw["label"].shape, mode="bilinear", align_corners=False)
                pred = logits.argmax(1)[0].cpu().numpy()
                panels.append(np.asarray(viz.prediction_panel(raw["rgb"], raw["depth"], pred, dataset.colors,
                                                              truth=raw["label"], name=str(raw.get("name", i)))))
    finally:
        model.train(was_training)
    return panels
