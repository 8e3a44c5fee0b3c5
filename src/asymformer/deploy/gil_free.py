"""Inference that does not hold Python's GIL, for a model running on a background thread.

Eager PyTorch runs Python between operations, so it takes the GIL back dozens of times per layer;
Python work on any other thread of the process (a producer, callbacks, a ROS executor, a viewer)
then stalls it. Beside one busy Python thread an asymformer_b0_a inference at 240×320 took 27× as
long; beside a 500 Hz producer, 30 % longer (benchmarks/RESULTS.md, "Streaming runtime, second
pass"). A frozen TorchScript trace runs whole in C++ without the GIL. `GilFreeTraces` builds one
per input size for a Segmenter's eager CPU model, checks it against eager, and keeps the newest
few; anything it cannot trust runs eager, with one warning per size.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict

import torch

from .common import max_abs_diff

# Eager PyTorch backends (Python runs between operations: they hold the GIL for much of an inference).
GIL_BOUND_BACKENDS = ("eager", "fused", "channels_last")
MAX_SIZES = 4  # traces kept (least recently used dropped): a camera stream has one size
ATOL = 1e-4  # the tolerance optimize_for_inference calls exact


def traceable(model: torch.nn.Module) -> bool:
    """Only networks known to trace faithfully: a trace records one path through the code, so a
    module whose branches depend on input values would be right on the frame it was checked on
    and silently wrong on others. AsymFormer's control flow depends on shapes alone."""
    from asymformer.models.asymformer import AsymFormer

    return isinstance(model, AsymFormer)


class GilFreeTraces:
    """Per-size traces of one eager model; thread-safe (two runners may share a Segmenter)."""

    def __init__(self, model: torch.nn.Module, eager):
        self.model, self.eager = model, eager
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, rgb: torch.Tensor, depth: torch.Tensor):
        """The callable for these inputs: a checked trace, or the eager model where none is trusted."""
        key = (tuple(rgb.shape), tuple(depth.shape))
        with self._lock:  # held while building, so a size is traced once, not by every thread that misses
            fn = self._cache.get(key)
            if fn is None:
                fn = self._cache[key] = self._build(rgb, depth)
                while len(self._cache) > MAX_SIZES:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(key)
            return fn

    def __len__(self) -> int:
        return len(self._cache)

    def _build(self, rgb: torch.Tensor, depth: torch.Tensor):
        from .backends import build_backend  # backends import the CUDA / ONNX builders: only when needed

        if not traceable(self.model):
            return self.eager  # not a known network: eager, quietly (its own choice of module)
        try:
            fn, _ = build_backend("jit", self.model, rgb, depth)
            diff = max_abs_diff(fn(rgb, depth), self.eager(rgb, depth))
            if diff <= ATOL:
                return fn
            reason = f"its logits differ from eager by {diff:.2g}"
        except Exception as exc:  # noqa: BLE001 - tracing, freezing or the first run failed: run eager
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        warnings.warn(f"Segmenter: no GIL-free path for {tuple(rgb.shape[2:])} inputs ({reason}); running eager "
                      "PyTorch, which Python work on other threads slows down", stacklevel=4)
        return self.eager
