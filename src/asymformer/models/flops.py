"""Multiply-accumulate counting with torch's FlopCounterMode.

The paper's "36.0 GFLOPs" are multiply-accumulates of convolutions and linear layers. Attention
matrix products are reported separately: FlopCounterMode has no formula for the CPU flash-attention
kernel that scaled_dot_product_attention dispatches to, so one is registered here. On CPU tensors that
count includes CMA's zero-padded value channels (compute the kernel really does); meta-device counts
(`model_info`, the paper's figures) see the unpadded products.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten
_CONV = {"aten.convolution", "aten._convolution", "aten.convolution_backward"}
_LINEAR = {"aten.addmm", "aten.mm"}
_ATTENTION = {"aten.bmm", "aten.baddbmm", "aten._scaled_dot_product_flash_attention_for_cpu",
              "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_efficient_attention",
              "aten._scaled_dot_product_cudnn_attention"}


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    b, h, lq, e = query_shape
    lk, ev = key_shape[2], value_shape[3]
    return 2 * b * h * lq * lk * (e + ev)


def count_macs(model: torch.nn.Module, height: int = 480, width: int = 640, batch: int = 1) -> dict:
    """G multiply-accumulates of one forward pass, by kind. Works on meta-device models (no compute)."""
    p = next(model.parameters())
    rgb = torch.zeros(batch, 3, height, width, device=p.device, dtype=p.dtype)
    depth = torch.zeros(batch, getattr(model, "depth_in_chans", 1), height, width, device=p.device, dtype=p.dtype)
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(rgb, depth)
    finally:
        model.train(was_training)
    counts = {str(k): v / 2e9 for k, v in counter.get_flop_counts().get("Global", {}).items()}
    conv = sum(v for k, v in counts.items() if k in _CONV)
    linear = sum(v for k, v in counts.items() if k in _LINEAR)
    attention = sum(v for k, v in counts.items() if k in _ATTENTION)
    return {"conv": conv, "linear": linear, "attention": attention, "total": conv + linear,
            "total_with_attention": conv + linear + attention, "by_op": counts}


def model_info(height: int = 480, width: int = 640, num_classes: int = 40) -> list[dict]:
    """Parameters and GMACs of every variant, computed on the meta device (instant, no memory)."""
    from .asymformer import create_model, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes)
        macs = count_macs(model, height, width)
        rows.append({"name": name, "params": sum(p.numel() for p in model.parameters()),
                     "gmacs": round(macs["total"], 3), "gmacs_with_attention": round(macs["total_with_attention"], 3),
                     "height": height, "width": width})
    return rows
