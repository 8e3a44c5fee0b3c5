"""Per-iteration learning-rate schedule: linear warm-up, then poly decay to zero.

A tiny explicit class instead of LambdaLR: its whole state is one integer, so a resumed run
continues the curve exactly (no warm-up restart) and the state pickles under weights_only.
"""

from __future__ import annotations


def warmup_poly_factor(iteration: int, total: int, warmup: int, start_factor: float = 1e-3,
                       power: float = 0.9) -> float:
    """Multiplier of the base lr at `iteration` (0-based) out of `total` iterations."""
    if warmup > 0 and iteration < warmup:
        return start_factor + (1.0 - start_factor) * iteration / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (iteration - warmup) / span)
    return (1.0 - progress) ** power


class WarmupPoly:
    """Sets every param group's lr to base_lr * factor(iteration); call step() after each update."""

    def __init__(self, optimizer, total_iters: int, warmup_iters: int, start_factor: float = 1e-3,
                 power: float = 0.9):
        self.optimizer = optimizer
        self.total_iters = int(total_iters)
        self.warmup_iters = int(warmup_iters)
        self.start_factor = float(start_factor)
        self.power = float(power)
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, base in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = base
        self.iteration = 0
        self._apply()

    def factor(self, iteration: int | None = None) -> float:
        it = self.iteration if iteration is None else iteration
        return warmup_poly_factor(it, self.total_iters, self.warmup_iters, self.start_factor, self.power)

    def _apply(self) -> None:
        f = self.factor()
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * f

    def step(self) -> None:
        self.iteration += 1
        self._apply()

    def rescale(self, ratio: float) -> None:
        """Multiply the base lr (a resumed run with a new --lr keeps its place on the curve)."""
        self.base_lrs = [b * ratio for b in self.base_lrs]
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = base
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"iteration": self.iteration, "total_iters": self.total_iters,
                "warmup_iters": self.warmup_iters, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["total_iters"]) != self.total_iters:
            raise ValueError(f"resume state was made for {state['total_iters']} iterations but this run "
                             f"has {self.total_iters}: epochs, batch size or dataset size changed")
        self.iteration = int(state["iteration"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._apply()
