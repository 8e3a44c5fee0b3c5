"""Mix Transformer (SegFormer), the depth/fusion branch, with SegFormer's parameter names.

Attention uses `scaled_dot_product_attention`, which is exact to float rounding and much
faster on CPU than an explicit softmax(QKᵀ)V.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DropPath, to_map, tokens


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping k×k windows, then LayerNorm on the tokens."""

    def __init__(self, in_chans: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor):
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        return self.norm(tokens(x)), h, w


class EfficientAttention(nn.Module):
    """Multi-head attention whose keys/values come from a spatially reduced (sr×sr) map."""

    def __init__(self, dim: int, heads: int, sr_ratio: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"MiT dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        hd = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, hd).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(tokens(self.sr(to_map(x, h, w))))
        kv = self.kv(x).reshape(b, -1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return tokens(self.dwconv(to_map(x, h, w)))


class MixFFN(nn.Module):
    """Linear -> depthwise 3×3 conv -> GELU -> Linear: the conv gives positional information."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class MiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int = 4, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EfficientAttention(dim, heads, sr_ratio)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MiTStage(nn.Module):
    """Patch embedding, blocks and the closing LayerNorm of one MiT stage, NCHW in and out.

    Attribute names (`depth_stem`, `depth_layer`, `depth_norm`) are the AsymFormer checkpoint's.
    """

    def __init__(self, in_chans: int, dim: int, heads: int, depth: int, sr_ratio: int, kernel: int,
                 stride: int, drop_paths: list[float], mlp_ratio: int = 4):
        super().__init__()
        self.depth_stem = OverlapPatchEmbed(in_chans, dim, kernel, stride)
        self.depth_layer = nn.ModuleList(
            MiTBlock(dim, heads, sr_ratio, mlp_ratio, drop_paths[i]) for i in range(depth))
        self.depth_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward_depth(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.depth_stem(x)
        for blk in self.depth_layer:
            x = blk(x, h, w)
        return to_map(self.depth_norm(x), h, w)

    forward = forward_depth
