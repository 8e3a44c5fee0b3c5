"""RGB-D fusion: LAFS feature selection, CMA cross-modal attention, and the paper's ablations.

`Fusion` is the checkpoint's `SCC` module. Its `fusion=` argument selects the Table I variant:
"cat", "se_mhsa", "lafs", "cma" or "lafs_cma" (the released model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fuse import bn_affine, fold_affine_before, fold_bn_after
from .layers import to_map, tokens

FUSIONS = ("cat", "se_mhsa", "lafs", "cma", "lafs_cma")


class LAFS(nn.Module):
    """Local Attention-Guided Feature Selection (paper eq. 1-4, as in the released code).

    A learnable per-channel weighting y_s (no sigmoid) turns the channels into a spatial
    attention map; y_c is an SE-style channel gate. The code divides by C² where the paper
    text says √C; the released weights need C². It is computed as mean_c(x * y_s) / C: the same
    number, but C² (65536 to 1048576) and the channel sum would overflow float16, and TensorRT
    FP16 clamps constants beyond ±65504.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.fc_spatial = nn.Sequential(nn.Linear(channels, max(1, channels // 16), bias=False), nn.ReLU(),
                                        nn.Linear(max(1, channels // 16), channels, bias=False))
        self.fc_channel = nn.Sequential(nn.Linear(channels, max(1, channels // 8), bias=False), nn.ReLU(),
                                        nn.Linear(max(1, channels // 8), channels, bias=False),
                                        nn.Sigmoid())

    def forward(self, x: torch.Tensor, return_map: bool = False):
        b, c = x.shape[:2]
        y = x.mean(dim=(2, 3))
        y_s = self.fc_spatial(y).view(b, c, 1, 1)
        y_c = self.fc_channel(y).view(b, c, 1, 1)
        m = torch.sigmoid((x * y_s).mean(dim=1, keepdim=True) / c)
        out = m * x * y_c
        return (out, m) if return_map else out


class SEGate(nn.Module):
    """Squeeze-and-excitation channel gate (the "SE" of the SE+MHSA ablation).

    Reduction 8, as the channel gate inside the authors' LAFS: with it the five fusion variants
    have exactly Table I's parameter counts (SE+MHSA-H2 32.6 M; the classic ratio 16 gives 32.47 M).
    """

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(),
                                nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


def _pool_tokens(t: torch.Tensor, h: int, w: int, f: int) -> torch.Tensor:
    """Average-pool a token sequence on its H×W map by f (the paper's key/value down-sampling)."""
    if f == 1:
        return t
    return tokens(F.avg_pool2d(to_map(t, h, w), f, ceil_mode=True, count_include_pad=False))


def attention_width(device_type: str, e: int, ev: int) -> int:
    """Head width at which SDPA keeps its fused kernels for query/key width e and value width ev.

    With unequal widths SDPA falls back to the "math" path that materialises the N×N matrix
    (4800² at stage 2 of a 480×640 input). CPU's flash kernel needs equal widths; CUDA's flash
    and memory-efficient kernels also want widths that are multiples of 8 (b0_a has 20).
    Zero-padding to that width is exact: padded q/k add 0 to every dot product, padded v
    columns are sliced off, and the softmax scale stays 1/sqrt(e). Other devices (meta, for
    counting MACs) keep the network's own widths.
    """
    if device_type == "cpu":
        return max(e, ev)
    if device_type == "cuda":
        return -(-max(e, ev) // 8) * 8
    return 0  # as they are


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """SDPA on the fast kernels whatever the head widths (see `attention_width`)."""
    e, ev = q.shape[-1], v.shape[-1]
    width = attention_width(q.device.type, e, ev)
    if width == 0 or width == e == ev or torch.onnx.is_in_onnx_export():  # ONNX decomposes SDPA itself
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if width > e:
        q, k = F.pad(q, (0, width - e)), F.pad(k, (0, width - e))
    if width > ev:
        v = F.pad(v, (0, width - ev))
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=e ** -0.5)
    return out[..., :ev] if width > ev else out


class CMA(nn.Module):
    """Cross-Modal Attention (paper eq. 5-14): per-modality self-similarity applied to fused values.

    Keys and queries of depth and RGB are projected separately, concatenated and channel-shuffled
    (groups=2) so each of the two heads mixes both modalities; values come from the fused map.
    `kv_downsample` f > 1 pools keys/values by f (the paper text); the checkpoint uses f = 1.
    """

    def __init__(self, depth_dim: int, rgb_dim: int, attn_drop: float = 0.2, kv_downsample: int = 1):
        super().__init__()
        self.m1, self.m2 = depth_dim // 4, rgb_dim // 4
        self.bn_x1 = nn.BatchNorm2d(depth_dim)
        self.bn_x2 = nn.BatchNorm2d(rgb_dim)
        self.kq1 = nn.Linear(depth_dim, 2 * self.m2)
        self.kq2 = nn.Linear(rgb_dim, 2 * self.m2)
        self.v_conv = nn.Linear(depth_dim, 2 * self.m1)
        self.out_conv = nn.Linear(2 * self.m1, depth_dim)
        self.bn_last = nn.BatchNorm2d(depth_dim)
        self.attn_drop = attn_drop
        self.kv_downsample = int(kv_downsample)

    def forward(self, x: torch.Tensor, depth: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        m2 = self.m2
        kq = torch.cat([self.kq1(tokens(self.bn_x1(depth))), self.kq2(tokens(self.bn_x2(rgb)))], dim=-1)
        # channel_shuffle(groups=2): new[2j] = first[j], new[2j+1] = second[j]
        kq = kq.unflatten(-1, (2, 2 * m2)).transpose(-1, -2).flatten(-2)
        k1, q1, k2, q2 = kq.split(m2, dim=-1)
        v1, v2 = self.v_conv(tokens(x)).split(self.m1, dim=-1)
        f = self.kv_downsample
        k1, k2, v1, v2 = (_pool_tokens(t, h, w, f) for t in (k1, k2, v1, v2))
        p = self.attn_drop if self.training else 0.0
        o = _attention(torch.stack([q1, q2], 1), torch.stack([k1, k2], 1), torch.stack([v1, v2], 1), p)
        y = self.out_conv(o.transpose(1, 2).flatten(2))  # heads side by side: cat[o1, o2]
        return self.bn_last(to_map(y, h, w)) + x

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the input BatchNorms into kq1/kq2 and bn_last into out_conv (exact)."""
        for bn_name, linear in (("bn_x1", self.kq1), ("bn_x2", self.kq2)):
            bn = getattr(self, bn_name)
            if isinstance(bn, nn.BatchNorm2d) and fold_affine_before(linear, *bn_affine(bn)):
                setattr(self, bn_name, nn.Identity())
        if isinstance(self.bn_last, nn.BatchNorm2d) and fold_bn_after(self.out_conv, self.bn_last):
            self.bn_last = nn.Identity()


class MHSA(nn.Module):
    """Plain 2-head self-attention on the fused map (the "MHSA-H2" of the SE+MHSA ablation)."""

    def __init__(self, dim: int, heads: int = 2, attn_drop: float = 0.2):
        super().__init__()
        self.heads, self.attn_drop = heads, attn_drop
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bn_last = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(tokens(x)).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        p = self.attn_drop if self.training else 0.0
        o = _attention(qkv[0], qkv[1], qkv[2], p)
        return self.bn_last(to_map(self.proj(o.transpose(1, 2).reshape(b, h * w, c)), h, w)) + x

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold bn_last into the output projection (exact)."""
        if isinstance(self.bn_last, nn.BatchNorm2d) and fold_bn_after(self.proj, self.bn_last):
            self.bn_last = nn.Identity()


class Fusion(nn.Module):
    """cat([depth, rgb]) -> [LAFS | SE] -> 1×1 conv + BN to the depth width -> [CMA | MHSA]."""

    def __init__(self, depth_dim: int, rgb_dim: int, fusion: str = "lafs_cma", attn_drop: float = 0.2,
                 kv_downsample: int = 1):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion={fusion!r} is not one of {', '.join(FUSIONS)}")
        c = depth_dim + rgb_dim
        self.fusion = fusion
        if fusion in ("lafs", "lafs_cma"):
            self.fus_atten = LAFS(c)
        elif fusion == "se_mhsa":
            self.fus_atten = SEGate(c)
        self.conv1 = nn.Conv2d(c, depth_dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(depth_dim)
        if fusion in ("cma", "lafs_cma"):
            self.cross_atten = CMA(depth_dim, rgb_dim, attn_drop, kv_downsample)
        elif fusion == "se_mhsa":
            self.self_atten = MHSA(depth_dim, 2, attn_drop)

    def forward(self, depth: torch.Tensor, rgb: torch.Tensor, return_map: bool = False):
        x = torch.cat([depth, rgb], dim=1)
        m = None
        if isinstance(getattr(self, "fus_atten", None), LAFS):
            x, m = self.fus_atten(x, return_map=True)
        elif hasattr(self, "fus_atten"):
            x = self.fus_atten(x)
        x = self.bn(self.conv1(x))
        if hasattr(self, "cross_atten"):
            x = self.cross_atten(x, depth, rgb)
        elif hasattr(self, "self_atten"):
            x = self.self_atten(x)
        return (x, m) if return_map else x

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm after the 1×1 fusion conv (exact); CMA/MHSA fuse themselves."""
        if isinstance(self.bn, nn.BatchNorm2d) and fold_bn_after(self.conv1, self.bn):
            self.bn = nn.Identity()
