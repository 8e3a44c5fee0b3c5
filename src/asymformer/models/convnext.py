"""ConvNeXt (Liu et al. 2022), the RGB branch, laid out as in Meta's original implementation.

Module and parameter names follow the AsymFormer checkpoint (`rgb_stem`, `rgb_layer.N.{dwconv,
norm, pwconv1, pwconv2, gamma}`), so official weights load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fuse import fold_affine_before, fold_scale_after
from .layers import DropPath, Passthrough, ScaleBy


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (Meta's `channels_first` LayerNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> LayerNorm -> Linear 4x -> GELU -> Linear -> layer scale, residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.layer_scale = ScaleBy()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.layer_scale(self.pwconv2(self.act(self.pwconv1(self.norm(x)))), self.gamma)
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the LayerNorm affine into pwconv1 and the layer scale into pwconv2 (exact).

        Each fold is skipped when its product would not fit the weights' dtype: an untrained
        layer scale (1e-6) times pwconv2 underflows in float16, so the scale then stays separate.
        """
        norm = self.norm
        if norm.elementwise_affine and fold_affine_before(self.pwconv1, norm.weight, norm.bias):
            self.norm = nn.LayerNorm(norm.normalized_shape, eps=norm.eps, elementwise_affine=False)
        if self.gamma is not None and fold_scale_after(self.pwconv2, self.gamma):
            self.gamma = None
            self.layer_scale = Passthrough()


def convnext_stem(in_chans: int, dim: int) -> nn.Sequential:
    """Stage-1 entry: 4x4 stride-4 patchify conv then LayerNorm (keys rgb_stem.0 conv, .1 norm)."""
    return nn.Sequential(nn.Conv2d(in_chans, dim, kernel_size=4, stride=4), LayerNorm2d(dim, eps=1e-6))


def convnext_downsample(in_dim: int, out_dim: int) -> nn.Sequential:
    """Stage 2-4 entry: LayerNorm then 2x2 stride-2 conv (keys rgb_stem.0 norm, .1 conv)."""
    return nn.Sequential(LayerNorm2d(in_dim, eps=1e-6), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))


def convnext_blocks(dim: int, drop_paths: list[float]) -> nn.Sequential:
    return nn.Sequential(*[ConvNeXtBlock(dim, drop_path=dp) for dp in drop_paths])
