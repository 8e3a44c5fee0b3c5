"""SegFormer's all-MLP decoder (embed dim 256), with the checkpoint's parameter names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPProj(nn.Module):
    """Per-pixel Linear (a 1×1 conv) applied to a map, as SegFormer's `MLP` with `.proj`."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.proj.weight[:, :, None, None], self.proj.bias)


class MLPDecoder(nn.Module):
    """Project c1..c4 to `embed_dim`, resize to c1 (H/4), fuse (conv+BN+ReLU), classify, ×4 up.

    After `fold_projections()` (called by `AsymFormer.fuse()`), the per-stage projections and the
    fusing conv are one Linear per stage applied at the stage's own resolution: bilinear
    resizing commutes with per-pixel affine maps, so this is exact and saves ~5 GMACs at 480×640.
    """

    def __init__(self, in_dims, embed_dim: int = 256, num_classes: int = 40, dropout: float = 0.1):
        super().__init__()
        self.in_dims = tuple(in_dims)
        for i, d in enumerate(self.in_dims, start=1):
            setattr(self, f"linear_c{i}", MLPProj(d, embed_dim))
        self.linear_fuse = nn.Sequential(nn.Conv2d(4 * embed_dim, embed_dim, 1), nn.BatchNorm2d(embed_dim),
                                         nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)
        self.folded = None  # ModuleList of per-stage 1×1 convs after fold_projections()

    def forward(self, feats, out_size) -> torch.Tensor:
        c1 = feats[0]
        size = c1.shape[2:]
        if self.folded is not None:
            x = self.folded[0](c1)
            for conv, c in zip(self.folded[1:], feats[1:]):
                x = x + F.interpolate(conv(c), size=size, mode="bilinear", align_corners=False)
            x = F.relu(x)
        else:
            projected = []
            for i in (4, 3, 2, 1):  # concatenation order of the checkpoint: c4, c3, c2, c1
                y = getattr(self, f"linear_c{i}")(feats[i - 1])
                if i > 1:
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
                projected.append(y)
            x = self.linear_fuse(torch.cat(projected, dim=1))
        x = self.linear_pred(self.dropout(x))
        return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
