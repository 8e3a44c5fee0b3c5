"""Segmentation metrics the way the field reports them.

One confusion matrix is accumulated over the whole set (never per-image averages); IoU per class
= TP / (TP + FP + FN) from it. Three means, because they differ on subsets where some classes
never occur (on the full NYUv2 / SUNRGBD test sets every class occurs and all three agree):
- miou: over classes that occur in the labels or the predictions;
- miou_all_classes: over all K classes, a class that never occurs counting 0 (the authors'
  eval.py / MS5_eval.py: intersection / (union + 1e-10), mean over K);
- miou_present: over classes present in the labels.
Pixel accuracy over non-void pixels; mean class accuracy over classes present in the labels.
"""

from __future__ import annotations

import numpy as np
import torch


class ConfusionMatrix:
    """K×K counts, rows = ground truth, columns = prediction; void pixels are skipped."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device="cpu"):
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted labels and ground truth (same shape, any batch layout)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
        k = self.num_classes
        pred = pred.reshape(-1).to(self.mat.device, torch.int64)
        target = target.reshape(-1).to(self.mat.device, torch.int64)
        valid = (target != self.ignore_index) & (target >= 0) & (target < k)
        idx = target[valid] * k + pred[valid].clamp(0, k - 1)
        self.mat += torch.bincount(idx, minlength=k * k).reshape(k, k)

    def all_reduce(self) -> None:
        """Sum the matrices of every process (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat)

    def compute(self) -> dict:
        return metrics_from_confusion(self.mat.cpu().numpy())


def metrics_from_confusion(mat: np.ndarray) -> dict:
    """mIoU, pixel / mean class accuracy and per-class IoU (None where a class never occurs)."""
    mat = np.asarray(mat, dtype=np.float64)
    tp = np.diag(mat)
    gt = mat.sum(1)
    pred = mat.sum(0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    total = mat.sum()
    present = gt > 0
    return {
        "miou": _nanmean(iou),
        "miou_all_classes": float(np.nan_to_num(iou, nan=0.0).mean()) if len(iou) else float("nan"),
        "miou_present": _nanmean(np.where(present, iou, np.nan)),
        "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_acc": _nanmean(acc),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
        "per_class_acc": [None if np.isnan(v) else float(v) for v in acc],
        "pixels": int(total),
    }


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
