"""Small building blocks shared by the branches."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop whole residual branches per sample, only while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def tokens(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W -> B×(H·W)×C."""
    return x.flatten(2).transpose(1, 2)


def to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """B×(H·W)×C -> B×C×H×W."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def linspace_rates(total: float, depths) -> list[list[float]]:
    """Linearly rising drop-path rates over all blocks, split per stage."""
    n = sum(depths)
    rates = [total * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    out, start = [], 0
    for d in depths:
        out.append(rates[start:start + d])
        start += d
    return out


class ScaleBy(nn.Module):
    """x * gamma, with gamma a parameter of the owning block (kept under the checkpoint's key)."""

    def forward(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return x * gamma


class Passthrough(nn.Module):
    """Returns its first input: what a folded-away step becomes, so forward paths never branch."""

    def forward(self, x: torch.Tensor, *unused) -> torch.Tensor:
        return x


class Concat(nn.Module):
    """Concatenate a list of maps along the channels."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Sum(nn.Module):
    """Add a list of maps (what `Concat` + 1×1 conv becomes once the conv is split per input)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
