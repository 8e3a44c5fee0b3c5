"""Inference-time folding of normalisation and affine layers into adjacent linear maps.

Everything here is exact algebra (up to float rounding), computed in float64:
- BatchNorm after a conv/linear (fusion conv, CMA output, decoder fuse conv) and BatchNorm before
  a linear (CMA's bn_x1/bn_x2 before kq1/kq2).
- ConvNeXt: the LayerNorm affine into pwconv1 and the layer scale gamma into pwconv2.
- Decoder: the four per-stage projections composed with the 1024->256 fuse conv, applied at each
  stage's own resolution (bilinear resizing commutes with per-pixel affine maps).
"""

from __future__ import annotations

import torch
from torch import nn

from .convnext import ConvNeXtBlock
from .fusion import CMA, MHSA, Fusion


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) = scale * x + shift in eval mode."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


def _set(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    dtype = layer.weight.dtype
    layer.weight = nn.Parameter(weight.to(dtype).reshape(layer.weight.shape))
    layer.bias = nn.Parameter(bias.to(dtype))


def _bias(layer: nn.Module, n: int) -> torch.Tensor:
    return layer.bias.double() if layer.bias is not None else torch.zeros(n, dtype=torch.float64)


def fold_bn_after(layer: nn.Module, bn: nn.BatchNorm2d) -> None:
    """layer (conv or linear) followed by bn -> one layer."""
    scale, shift = _bn_affine(bn)
    w = layer.weight.double()
    w = w * scale.view(-1, *([1] * (w.ndim - 1)))
    _set(layer, w, _bias(layer, w.shape[0]) * scale + shift)


def fold_affine_before(linear: nn.Linear, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """linear(scale * x + shift) -> linear'(x)."""
    w = linear.weight.double()
    _set(linear, w * scale.double()[None, :], _bias(linear, w.shape[0]) + w @ shift.double())


def _fuse_convnext_block(block: ConvNeXtBlock) -> None:
    norm = block.norm
    fold_affine_before(block.pwconv1, norm.weight.detach(), norm.bias.detach())
    block.norm = nn.LayerNorm(norm.normalized_shape, eps=norm.eps, elementwise_affine=False)
    g = block.gamma.double()
    _set(block.pwconv2, block.pwconv2.weight.double() * g[:, None], _bias(block.pwconv2, g.numel()) * g)
    block.gamma = None


def _fuse_cma(cma: CMA) -> None:
    for bn, linear in ((cma.bn_x1, cma.kq1), (cma.bn_x2, cma.kq2)):
        fold_affine_before(linear, *_bn_affine(bn))
    cma.bn_x1, cma.bn_x2 = nn.Identity(), nn.Identity()
    fold_bn_after(cma.out_conv, cma.bn_last)
    cma.bn_last = nn.Identity()


def _fuse_decoder(dec) -> None:
    conv, bn = dec.linear_fuse[0], dec.linear_fuse[1]
    scale, shift = _bn_affine(bn)
    wf = conv.weight.double().flatten(1) * scale[:, None]
    bias = _bias(conv, wf.shape[0]) * scale + shift
    e = wf.shape[1] // 4
    convs = []
    for slot, i in enumerate((4, 3, 2, 1)):  # the fuse conv sees cat[c4, c3, c2, c1]
        proj = getattr(dec, f"linear_c{i}").proj
        block = wf[:, slot * e:(slot + 1) * e]
        bias = bias + block @ proj.bias.double()
        c = nn.Conv2d(proj.in_features, wf.shape[0], 1, bias=True)
        _set(c, block @ proj.weight.double(), torch.zeros(wf.shape[0], dtype=torch.float64))
        convs.append((i, c))
    convs.sort()
    _set(convs[0][1], convs[0][1].weight.double(), bias)  # all biases go with c1 (never resized)
    dec.folded = nn.ModuleList(c for _, c in convs)
    for i in (1, 2, 3, 4):
        delattr(dec, f"linear_c{i}")
    dec.linear_fuse = nn.Identity()


@torch.no_grad()
def fuse_model(model):
    """Fold in place for inference; returns the model in eval mode. Calling twice is a no-op."""
    if getattr(model, "fused", False):
        return model
    model.eval()
    for m in list(model.modules()):
        if isinstance(m, ConvNeXtBlock):
            _fuse_convnext_block(m)
        elif isinstance(m, CMA):
            _fuse_cma(m)
        elif isinstance(m, MHSA):
            fold_bn_after(m.proj, m.bn_last)
            m.bn_last = nn.Identity()
    for m in list(model.modules()):
        if isinstance(m, Fusion):
            fold_bn_after(m.conv1, m.bn)
            m.bn = nn.Identity()
    _fuse_decoder(model.Decoder)
    model.fused = True
    return model
