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


class ChannelLayerNorm(nn.Module):
    """LayerNorm over dim 1 of an NCHW map, written with reductions instead of permutes.

    The graph form of LayerNorm2d and of a ConvNeXt block's norm: an ONNX graph built from it has
    no Transpose around each norm, which ONNX Runtime and OpenVINO otherwise pay as layout
    reorders (see `ConvNeXtBlock.to_channels_first`).

    `one_pass=True` takes the variance as E[x²] − E[x]² (two reductions that both read x) instead
    of E[(x − E[x])²], which needs x − E[x] written out and read back: OpenVINO INT8 ran 5-7 %
    faster. It loses precision when a pixel's channel mean is large against their spread, so only
    reduced-precision graphs use it; FP32 graphs keep the exact form.
    """

    def __init__(self, dim: int, eps: float, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                 one_pass: bool = False):
        super().__init__()
        self.eps, self.one_pass = eps, one_pass
        self.weight = None if weight is None else nn.Parameter(weight.detach().reshape(1, dim, 1, 1).clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().reshape(1, dim, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        if self.one_pass:  # ReduceL2 in ONNX: one read of x; rounding can take the difference below 0
            var = (torch.linalg.vector_norm(x, 2, dim=1, keepdim=True).square() / x.shape[1]
                   - mean.square()).clamp_min(0.0)
            y = (x - mean) * torch.rsqrt(var + self.eps)
        else:
            y = x - mean
            y = y * torch.rsqrt(y.pow(2).mean(1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y


class ChannelScale(nn.Module):
    """x * gamma over dim 1 of an NCHW map (the layer scale of a channels-first block)."""

    def forward(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return x * gamma.reshape(1, -1, 1, 1)


class Permute(nn.Module):
    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


def _conv1x1(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    conv = conv.to(device=linear.weight.device, dtype=linear.weight.dtype)
    conv.weight.data.copy_(linear.weight.detach()[:, :, None, None])
    if linear.bias is not None:
        conv.bias.data.copy_(linear.bias.detach())
    return conv


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
        self.to_tokens, self.to_map = Permute(0, 2, 3, 1), Permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.to_tokens(self.dwconv(x))
        y = self.layer_scale(self.pwconv2(self.act(self.pwconv1(self.norm(y)))), self.gamma)
        return x + self.drop_path(self.to_map(y))

    @torch.no_grad()
    def to_channels_first(self, one_pass_norm: bool = False) -> None:
        """The same block on NCHW maps: norm by reductions over the channels, pwconv1/pwconv2 as
        1×1 convolutions, no permutes (exact up to float rounding; weights are reshaped, not refit).
        `one_pass_norm`: see `ChannelLayerNorm(one_pass=)`, for reduced-precision graphs only.

        Eager PyTorch runs the Linear form faster, so the model keeps it; ONNX graphs for ONNX
        Runtime and OpenVINO are exported from this form, which spares them a layout reorder
        around every block (benchmarks/RESULTS.md). Call after `fuse()`, on a copy.
        """
        if isinstance(self.pwconv1, nn.Conv2d):
            return
        norm = self.norm
        self.norm = ChannelLayerNorm(norm.normalized_shape[0], norm.eps, norm.weight, norm.bias, one_pass_norm)
        self.pwconv1, self.pwconv2 = _conv1x1(self.pwconv1), _conv1x1(self.pwconv2)
        if isinstance(self.layer_scale, ScaleBy):
            self.layer_scale = ChannelScale()
        self.to_tokens, self.to_map = nn.Identity(), nn.Identity()

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


def convnext_channels_first(module: nn.Module, one_pass_norms: bool = False) -> nn.Module:
    """Switch every ConvNeXt block and LayerNorm2d in `module` to its channels-first graph form
    (`ConvNeXtBlock.to_channels_first`), in place; returns `module`. Other layers are untouched.
    `one_pass_norms` is for reduced-precision graphs (`ChannelLayerNorm(one_pass=)`)."""
    for block in module.modules():
        if isinstance(block, ConvNeXtBlock):
            block.to_channels_first(one_pass_norms)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is LayerNorm2d:
                setattr(parent, name, ChannelLayerNorm(child.normalized_shape[0], child.eps, child.weight, child.bias,
                                                       one_pass_norms))
    return module


def convnext_stem(in_chans: int, dim: int) -> nn.Sequential:
    """Stage-1 entry: 4x4 stride-4 patchify conv then LayerNorm (keys rgb_stem.0 conv, .1 norm)."""
    return nn.Sequential(nn.Conv2d(in_chans, dim, kernel_size=4, stride=4), LayerNorm2d(dim, eps=1e-6))


def convnext_downsample(in_dim: int, out_dim: int) -> nn.Sequential:
    """Stage 2-4 entry: LayerNorm then 2x2 stride-2 conv (keys rgb_stem.0 norm, .1 conv)."""
    return nn.Sequential(LayerNorm2d(in_dim, eps=1e-6), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))


def convnext_blocks(dim: int, drop_paths: list[float]) -> nn.Sequential:
    return nn.Sequential(*[ConvNeXtBlock(dim, drop_path=dp) for dp in drop_paths])
