"""Cross-modal attention with key/value down-sampling (`cma_kv_downsample`) against a hand computation.

The reference below spells the paper's CMA out with plain tensor algebra: BatchNorm from its
running statistics, the groups=2 channel shuffle as strided assignment, f×f average pooling as a
loop over windows (ceil mode: partial windows at the bottom/right edge average the pixels they
hold), and softmax(q kᵀ / √d) v per head. Nothing of the module's own helpers is reused.
"""

from __future__ import annotations

import math

import pytest
import torch

import asymformer
from asymformer.models.fusion import CMA


def _bn(bn, t):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (t - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]


def _pool(t, f):
    """B×C×H×W -> B×C×ceil(H/f)×ceil(W/f): the mean of each f×f window's existing pixels."""
    b, c, h, w = t.shape
    out = torch.empty(b, c, math.ceil(h / f), math.ceil(w / f), dtype=t.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = t[:, :, i * f:(i + 1) * f, j * f:(j + 1) * f].mean(dim=(2, 3))
    return out


def cma_by_hand(cma: CMA, x, depth, rgb, f: int):
    b, c, h, w = x.shape
    m1, m2 = cma.m1, cma.m2

    def linear(layer, t):  # B×C×H×W -> B×C'×H×W
        return torch.einsum("oc,bchw->bohw", layer.weight, t) + layer.bias[:, None, None]

    first, second = linear(cma.kq1, _bn(cma.bn_x1, depth)), linear(cma.kq2, _bn(cma.bn_x2, rgb))
    kq = torch.empty(b, 4 * m2, h, w)
    kq[:, 0::2], kq[:, 1::2] = first, second  # channel shuffle, groups=2
    k1, q1, k2, q2 = kq[:, :m2], kq[:, m2:2 * m2], kq[:, 2 * m2:3 * m2], kq[:, 3 * m2:]
    v = linear(cma.v_conv, x)
    v1, v2 = v[:, :m1], v[:, m1:]
    heads = []
    for q, k, val in ((q1, k1, v1), (q2, k2, v2)):
        q = q.flatten(2).transpose(1, 2)                    # B×N×m2, N = H·W
        k = _pool(k, f).flatten(2).transpose(1, 2)          # B×M×m2, M = ceil(H/f)·ceil(W/f)
        val = _pool(val, f).flatten(2).transpose(1, 2)      # B×M×m1
        heads.append(torch.softmax(q @ k.transpose(1, 2) / math.sqrt(m2), dim=-1) @ val)
    o = torch.cat(heads, -1)                                # B×N×2m1
    y = (o @ cma.out_conv.weight.T + cma.out_conv.bias).transpose(1, 2).reshape(b, c, h, w)
    return _bn(cma.bn_last, y) + x


def _randomise_bn(module):
    g = torch.Generator().manual_seed(5)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


@pytest.mark.parametrize("f,h,w", [(1, 5, 7), (2, 5, 7), (3, 5, 7), (2, 6, 8)])
def test_cma_with_kv_downsampling_equals_the_hand_computation(f, h, w):
    torch.manual_seed(0)
    cma = CMA(32, 40, kv_downsample=f)
    _randomise_bn(cma)
    cma.eval()
    g = torch.Generator().manual_seed(f * 100 + h)
    x, depth, rgb = (torch.randn(2, ch, h, w, generator=g) for ch in (32, 32, 40))
    with torch.no_grad():
        got, want = cma(x, depth, rgb), cma_by_hand(cma, x, depth, rgb, f)
    assert got.shape == (2, 32, h, w)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if f > 1:  # and the pooling really changes the answer (so f is not silently ignored)
        with torch.no_grad():
            assert (cma_by_hand(cma, x, depth, rgb, 1) - got).abs().max() > 1e-3


def test_model_passes_each_stage_its_factor():
    """cma_kv_downsample=(1, 2, 3) reaches stages 2-4 (stage 1 has no fusion): every CMA of a
    96×128 forward pass equals the hand computation with its stage's factor."""
    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=5, cma_kv_downsample=(1, 2, 3))
    _randomise_bn(model)
    model.eval()
    cmas = [s.SCC.cross_atten for s in model.stages[1:]]
    assert [c.kv_downsample for c in cmas] == [1, 2, 3] and not hasattr(model.stages[0], "SCC")
    seen = []
    hooks = [c.register_forward_hook(lambda mod, args, out: seen.append((mod, args, out))) for c in cmas]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 128, generator=g), torch.randn(1, 1, 96, 128, generator=g))
        for mod, args, out in seen:
            torch.testing.assert_close(out, cma_by_hand(mod, *args, mod.kv_downsample), rtol=1e-4, atol=1e-4)
    for hook in hooks:
        hook.remove()
    assert [tuple(out.shape[-2:]) for _, _, out in seen] == [(12, 16), (6, 8), (3, 4)]
    with pytest.raises(ValueError, match="cma_kv_downsample"):
        asymformer.create_model("asymformer_b0_a", cma_kv_downsample=(1, 2))
