"""Run logs: JSONL (every field), CSV (fixed columns for spreadsheets), TensorBoard if installed.

On resume the logs are cut back to the resumed iteration, so the curves never show the steps a
crash threw away twice.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from asymformer import viz
from asymformer.files import atomic_write, atomic_write_text, save_image

CSV_FIELDS = ["kind", "epoch", "iteration", "loss", "lr", "it_s", "miou", "pixel_acc", "mean_acc", "time"]


class RunLogger:
    """Appends records to RUN_DIR/log.jsonl and log.csv; optionally mirrors scalars to TensorBoard."""

    def __init__(self, run_dir, tensorboard: bool = True, resume_iteration: int | None = None):
        self.run_dir = Path(run_dir)
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

                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
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
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "iteration"):
                    self.tb.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)

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


def plot_curves(run_dir) -> Path | None:
    """RUN_DIR/curves.png: training loss per iteration and validation mIoU per epoch."""
    records = read_log(run_dir)
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
    path = Path(run_dir) / "curves.png"
    save_image(viz.stack(panels), path)
    return path
