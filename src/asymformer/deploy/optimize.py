"""Pick the fastest inference path that still matches eager PyTorch, by measuring, not guessing.

Which path wins depends on the machine (cores, AVX-512, GPU), the torch build and the input
size, so `optimize_for_inference` builds each candidate, checks it against the eager model
(max |Δ| <= atol on the same random input) and times it; the fastest exact one is returned.
"""

from __future__ import annotations

import statistics
import time

import torch

from .backends import REDUCED_PRECISION, BackendUnavailable, backend_device, build_backend

# openvino: exact with the f32 hint, 0.82x ONNX Runtime FP32 on a quiet Xeon, 1.3x on a loaded one: measured.
CPU_CANDIDATES = ("fused", "channels_last", "jit", "onnxruntime", "openvino")
CUDA_CANDIDATES = ("cuda-fp32",)


def example_inputs(batch: int, height: int, width: int, seed: int = 0):
    """Normalised-looking random inputs (unit scale), fixed by `seed`, on the CPU."""
    if height < 32 or width < 32 or batch < 1:
        raise ValueError(f"example size must be batch >= 1 and at least 32×32, got {batch}×{height}×{width}")
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, height, width, generator=g),
            torch.randn(batch, 1, height, width, generator=g))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_fn(fn, rgb, depth, warmup: int = 2, iters: int = 10, device: str = "cpu") -> list[float]:
    """Per-call latencies in milliseconds (model call only; CUDA events on a GPU)."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn(rgb, depth)
        _sync(device)
        times = []
        for _ in range(iters):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(rgb, depth)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn(rgb, depth)
                times.append((time.perf_counter() - t0) * 1000.0)
    return times


def summarize(times: list[float], batch: int) -> dict:
    s = sorted(times)
    median = statistics.median(s)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return {"median_ms": round(median, 3), "p90_ms": round(p90, 3), "min_ms": round(s[0], 3),
            "mean_ms": round(statistics.fmean(s), 3), "fps": round(1000.0 * batch / median, 3),
            "iters": len(s)}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


class InferenceFn:
    """The chosen `(rgb, depth) -> logits` callable, with what was measured to choose it."""

    def __init__(self, fn, backend: str, device: str, report: dict):
        self.fn, self.backend, self.device, self.report = fn, backend, device, report

    def __call__(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(rgb, depth)

    def __repr__(self) -> str:
        return f"InferenceFn(backend={self.backend!r}, device={self.device!r})"


def optimize_for_inference(model: torch.nn.Module, device="cpu", height: int = 480, width: int = 640,
                           batch: int = 1, candidates=None, atol: float = 1e-4, iters: int = 3,
                           warmup: int = 1, verbose: bool = False, precision: str = "fp32") -> InferenceFn:
    """Return the fastest callable matching eager within `atol` on `device` at batch×height×width.

    Shape-specialised paths (jit, onnxruntime) run the BN-folded model for other sizes. Reduced
    precision backends are never chosen: they cannot meet 1e-4. The model itself is not modified.
    precision="int8" / "bf16" (CPU only) picks among reduced-precision paths instead, judged by
    argmax agreement with FP32 on synthetic rooms (see lowp.py).
    """
    if precision != "fp32":
        from .lowp import check_precision, optimize_reduced

        if str(torch.device(device).type) != "cpu":
            raise ValueError(f"precision={precision!r} is a CPU path; use device='cpu' (GPUs: cuda-fp16/bf16 backends)")
        return optimize_reduced(model, check_precision(precision), height, width, batch, candidates, iters, warmup,
                                verbose=verbose)
    device = str(torch.device(device).type)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("optimize_for_inference(device='cuda'): no CUDA GPU is available; use device='cpu'")
    candidates = tuple(candidates or (CUDA_CANDIDATES if device == "cuda" else CPU_CANDIDATES))
    bad = [c for c in candidates if c in REDUCED_PRECISION or backend_device(c) != device]
    if bad:
        raise ValueError(f"candidates {bad} cannot run in FP32 on {device}")
    model = model.eval()
    rgb, depth = example_inputs(batch, height, width)
    ref_model = model.to(device)
    with torch.inference_mode():
        reference = ref_model(rgb.to(device), depth.to(device))
    report, best = {}, None
    for name in candidates:
        entry = _try_candidate(name, model, rgb, depth, reference, atol, iters, warmup, device)
        report[name] = entry.pop("_stats")
        if verbose:
            print(f"optimize_for_inference: {name}: {report[name]}")
        if "fn" in entry and (best is None or report[name]["median_ms"] < report[best[0]]["median_ms"]):
            best = (name, entry["fn"])
    if best is None:
        raise ValueError(f"no inference path matched eager within {atol} on {device}: {report}")
    return InferenceFn(best[1], best[0], device, report)


def _try_candidate(name, model, rgb, depth, reference, atol, iters, warmup, device) -> dict:
    try:
        fn, info = build_backend(name, model, rgb, depth)
    except BackendUnavailable as exc:
        return {"_stats": {"skipped": str(exc)}}
    r, d = rgb.to(device), depth.to(device)
    with torch.inference_mode():
        diff = max_abs_diff(fn(r, d), reference)
    if not diff <= atol:
        return {"_stats": {"rejected": f"max |diff| {diff:.2e} > {atol:g}", "max_abs_diff": diff}}
    stats = summarize(time_fn(fn, r, d, warmup=warmup, iters=iters, device=device), rgb.shape[0])
    return {"fn": fn, "_stats": {**stats, "max_abs_diff": diff, **info}}
