"""Inference-time folding algebra: exact re-parameterisations the blocks apply to themselves.

Each block owns its `fuse()` (ConvNeXtBlock, CMA, MHSA, Fusion, MLPDecoder) and calls these
helpers on its own layers. The algebra runs in float64 on the layer's own device (float32 where
the device has no float64, e.g. MPS), and the result is cast back to the layer's device and
dtype, so a model on a GPU or in half precision stays there.

A fold is applied only when its product fits the target dtype: in float16, folding ConvNeXt's
layer scale (1e-6 at initialisation) into `pwconv2` would flush almost every weight to zero,
so such a block keeps its separate scale instead. `fits()` is that check.
"""

from __future__ import annotations

import torch
from torch import nn

# A fold may lose at most this fraction of its non-zero entries to underflow in the target dtype.
MAX_UNDERFLOW = 1e-3


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 for the algebra, except on devices that have none (MPS)."""
    return torch.float32 if t.device.type == "mps" else torch.float64


def _c(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.detach().to(device=like.device, dtype=compute_dtype(like))


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) = scale * x + shift in eval mode, in the compute dtype."""
    w = bn.weight
    scale = _c(w, w) / torch.sqrt(_c(bn.running_var, w) + bn.eps)
    return scale, _c(bn.bias, w) - _c(bn.running_mean, w) * scale


def fits(values: torch.Tensor, dtype: torch.dtype) -> bool:
    """True when `values` cast to `dtype` stays finite and loses (almost) nothing to underflow.

    Tensors on the meta device carry no values: their folds are always applied.
    """
    if values.device.type == "meta" or not dtype.is_floating_point:
        return True
    info = torch.finfo(dtype)
    mag = values.abs()
    if not bool(torch.isfinite(mag).all()) or float(mag.max()) > info.max:
        return False
    nonzero = int((mag > 0).sum())
    lost = int(((mag < info.tiny) & (mag > 0)).sum())
    return nonzero == 0 or lost <= MAX_UNDERFLOW * nonzero


def layer_bias(layer: nn.Module) -> torch.Tensor:
    """The layer's bias in the compute dtype, zeros where it has none."""
    w = layer.weight
    if layer.bias is not None:
        return _c(layer.bias, w)
    return torch.zeros(w.shape[0], dtype=compute_dtype(w), device=w.device)


def set_params(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Replace weight and bias, keeping the layer's device, dtype and weight shape."""
    old = layer.weight
    layer.weight = nn.Parameter(weight.to(device=old.device, dtype=old.dtype).reshape(old.shape))
    layer.bias = nn.Parameter(bias.to(device=old.device, dtype=old.dtype))


def _set_if_fits(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """Apply a fold's result only when both tensors fit the layer's dtype; says whether it did."""
    if not (fits(weight, layer.weight.dtype) and fits(bias, layer.weight.dtype)):
        return False
    set_params(layer, weight, bias)
    return True


def fold_bn_after(layer: nn.Module, bn: nn.BatchNorm2d) -> bool:
    """layer (conv or linear) then bn -> one layer. False (nothing changed) if it would not fit."""
    scale, shift = bn_affine(bn)
    w = _c(layer.weight, layer.weight)
    return _set_if_fits(layer, w * scale.view(-1, *([1] * (w.ndim - 1))), layer_bias(layer) * scale + shift)


def fold_affine_before(linear: nn.Linear, scale: torch.Tensor, shift: torch.Tensor) -> bool:
    """linear(scale * x + shift) -> linear'(x). False (nothing changed) if it would not fit."""
    w = _c(linear.weight, linear.weight)
    return _set_if_fits(linear, w * _c(scale, w)[None, :], layer_bias(linear) + w @ _c(shift, w))


def fold_scale_after(linear: nn.Linear, scale: torch.Tensor) -> bool:
    """scale * linear(x) -> linear'(x) (ConvNeXt's layer scale). False if it would not fit."""
    w = _c(linear.weight, linear.weight)
    g = _c(scale, w)
    return _set_if_fits(linear, w * g[:, None], layer_bias(linear) * g)
