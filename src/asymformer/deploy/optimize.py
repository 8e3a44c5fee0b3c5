"""Pick the fastest inference path that still matches eager PyTorch, by measuring, not guessing.

Which path wins depends on the machine (cores, AVX-512, GPU), the torch build and the input
size, so `optimize_for_inference` builds each candidate, checks it against the eager model
(max |Δ| <= atol on the same random input) and times it; the fastest exact one is returned.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from asymformer import devices
from asymformer.models.info import info_of

from .accel.lowp import CANDIDATES, check_precision, refusal_advice
from .accel.quantize import calibration_frames
from .backends import REDUCED_PRECISION, backend_device, build_backend
from .common import BackendUnavailable, example_inputs, max_abs_diff

# openvino: exact with the f32 hint; faster than ONNX Runtime FP32 on some CPUs and loads, slower on others
# (benchmarks/RESULTS.md), so it is measured with the others rather than chosen outright.
CPU_CANDIDATES = ("fused", "channels_last", "jit", "onnxruntime", "openvino")
CUDA_CANDIDATES = ("cuda-fp32",)
# What a candidate may fail with at build or run time on a real machine (device, OOM, cuDNN,
# exporter): reported as "skipped" with the reason instead of ending the search.
CANDIDATE_ERRORS = (RuntimeError, ValueError, AssertionError, ImportError)

__all__ = ["InferenceFn", "example_inputs", "max_abs_diff", "optimize_for_inference", "summarize", "time_fn"]


def time_fn(fn, rgb, depth, warmup: int = 2, iters: int = 10, device="cpu") -> list[float]:
    """Per-call latencies in milliseconds (model call only; CUDA events on the GPU's own stream)."""
    dev = devices.resolve_device(device)
    if dev.type == "cuda":
        with torch.cuda.device(dev):
            return _time_cuda(fn, rgb, depth, warmup, iters)
    with torch.inference_mode():
        for _ in range(warmup):
            fn(rgb, depth)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(rgb, depth)
            times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _time_cuda(fn, rgb, depth, warmup: int, iters: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(warmup):
            fn(rgb, depth)
        torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(rgb, depth)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return times


def summarize(times: list[float], batch: int) -> dict:
    s = sorted(times)
    median = statistics.median(s)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return {"median_ms": round(median, 3), "p90_ms": round(p90, 3), "min_ms": round(s[0], 3),
            "mean_ms": round(statistics.fmean(s), 3), "fps": round(1000.0 * batch / median, 3),
            "iters": len(s)}


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
    precision backends are never chosen: they cannot meet 1e-4. The caller's model is neither
    modified nor moved: the reference is a copy on `device`. Reference and candidates run under
    the same CUDA maths settings (FP32 without TF32), scoped to this call. A candidate that fails
    (device, out of memory, cuDNN, export) is reported as skipped with its error.
    precision="int8" / "bf16" (CPU only) picks among reduced-precision paths instead, judged by
    argmax agreement with FP32 on synthetic rooms (`optimize_reduced`).
    """
    dev = devices.resolve_device(device)
    if precision != "fp32":
        if dev.type != "cpu":
            raise ValueError(f"precision={precision!r} is a CPU path; use device='cpu' (GPUs: cuda-fp16/bf16 backends)")
        return optimize_reduced(model, check_precision(precision), height, width, batch, candidates, iters, warmup,
                                verbose=verbose)
    kind = "cpu" if dev.type == "cpu" else "cuda"  # meta: a dry run of the CUDA path (see need_cuda)
    candidates = tuple(candidates or (CPU_CANDIDATES if kind == "cpu" else CUDA_CANDIDATES))
    bad = [c for c in candidates if c in REDUCED_PRECISION or backend_device(c) != kind]
    if bad:
        raise ValueError(f"candidates {bad} cannot run in FP32 on {dev}")
    rgb, depth = example_inputs(batch, height, width)
    with devices.cuda_math(fp32=True):
        reference = _reference(model, rgb, depth, dev)
        report, best = {}, None
        for name in candidates:
            entry = _try_candidate(name, model, rgb, depth, reference, atol, iters, warmup, dev)
            report[name] = entry.pop("_stats")
            if verbose:
                print(f"optimize_for_inference: {name}: {report[name]}")
            if "fn" in entry and (best is None or report[name]["median_ms"] < report[best[0]]["median_ms"]):
                best = (name, entry["fn"])
    if best is None:
        raise ValueError(f"no inference path matched eager within {atol} on {dev}: {report}")
    return InferenceFn(best[1], best[0], str(dev), report)


def _reference(model, rgb, depth, dev: torch.device) -> torch.Tensor:
    """Eager FP32 logits from an unfolded copy of the model on `dev` (the model stays put)."""
    ref_model = copy.deepcopy(model).eval().to(dev, torch.float32)
    with torch.inference_mode():
        out = ref_model(rgb.to(dev), depth.to(dev)).float()
    out = out if out.device.type == "meta" else out.cpu()
    del ref_model
    return out


def _try_candidate(name, model, rgb, depth, reference, atol, iters, warmup, dev) -> dict:
    try:
        fn, info = build_backend(name, model, rgb, depth, device=dev)
        r, d = rgb.to(dev), depth.to(dev)
        with torch.inference_mode():
            out = fn(r, d)
        if out.device.type == "meta":  # dry run: no values, so only the shape can be checked
            if out.shape != reference.shape:
                raise ValueError(f"output shape {tuple(out.shape)} != eager {tuple(reference.shape)}")
            stats = summarize(time_fn(fn, r, d, warmup=0, iters=1, device=dev), rgb.shape[0])
            return {"fn": fn, "_stats": {**stats, "max_abs_diff": None, "dry_run": True, **info}}
        diff = max_abs_diff(out, reference)
        if not diff <= atol:
            return {"_stats": {"rejected": f"max |diff| {diff:.2e} > {atol:g}", "max_abs_diff": diff}}
        stats = summarize(time_fn(fn, r, d, warmup=warmup, iters=iters, device=dev), rgb.shape[0])
    except CANDIDATE_ERRORS as exc:  # BackendUnavailable is a RuntimeError
        return {"_stats": {"skipped": _reason(exc)}}
    return {"fn": fn, "_stats": {**stats, "max_abs_diff": diff, **info}}


def _reason(exc: Exception) -> str:
    if isinstance(exc, BackendUnavailable):
        return str(exc)
    return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


# --------------------------------------------------------------------------- reduced precision (CPU)
def pixel_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of pixels whose argmax class is the same in logits a and b."""
    return float((a.float().argmax(1) == b.float().argmax(1)).float().mean())


def check_frames(height: int, width: int, batch: int, normalization=None, num: int = 2):
    """A few synthetic-room frames at the model size: the reduced-precision checks' inputs."""
    frames, _ = calibration_frames(None, num, height, width, normalization, batch=batch)
    return [(torch.from_numpy(r), torch.from_numpy(d)) for r, d in frames]


def optimize_reduced(model, precision: str, height: int, width: int, batch: int = 1, candidates=None,
                     iters: int = 3, warmup: int = 1, min_agreement: float = 0.98, verbose: bool = False):
    """The fastest `precision` ("int8" / "bf16") CPU path whose argmax agrees with FP32 on synthetic rooms."""
    check_precision(precision)
    pool = CANDIDATES[precision]
    candidates = tuple(candidates or pool)
    bad = [c for c in candidates if c not in pool]
    if bad:
        raise ValueError(f"candidates {bad} are not {precision} backends; choose from {', '.join(pool)}")
    model = copy.deepcopy(model).eval().to("cpu", torch.float32)  # the caller's model stays as it is
    info = info_of(model)
    frames = check_frames(height, width, batch, info.normalization if info is not None else None)
    with torch.inference_mode():
        refs = [model(r, d) for r, d in frames]
    report, best = {}, None
    for name in candidates:
        try:
            fn, info = build_backend(name, model, *frames[0])
            with torch.inference_mode():
                outs = [fn(r, d) for r, d in frames]
        except CANDIDATE_ERRORS as exc:  # BackendUnavailable is a RuntimeError
            report[name] = {"skipped": _reason(exc)}
            continue
        agree = min(pixel_agreement(o, ref) for o, ref in zip(outs, refs))
        diff = max(float((o.float() - ref).abs().max()) for o, ref in zip(outs, refs))
        if agree < min_agreement:
            report[name] = {"rejected": f"pixel agreement {agree:.4f} < {min_agreement}", "max_abs_diff": diff}
            continue
        stats = summarize(time_fn(fn, *frames[0], warmup=warmup, iters=iters), batch)
        report[name] = {**stats, "pixel_agreement": round(agree, 6), "max_abs_diff": diff, **info}
        if verbose:
            print(f"optimize_for_inference[{precision}]: {name}: {report[name]}")
        if best is None or report[name]["median_ms"] < report[best[0]]["median_ms"]:
            best = (name, fn)
    if best is None:
        by_reason: dict[str, list[str]] = {}  # candidates refused for the same reason are named together
        for n, r in report.items():
            by_reason.setdefault(r.get("skipped") or r.get("rejected"), []).append(n)
        reasons = "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())
        raise ValueError(f"no {precision} inference path is available or accurate enough here ({reasons}); "
                         f"{refusal_advice(precision, report)}")
    return InferenceFn(best[1], best[0], "cpu", report)


class ReducedPrecisionModel(torch.nn.Module):
    """An nn.Module face for a reduced-precision path, so evaluation loops can call it like the model."""

    def __init__(self, fn, precision: str):
        super().__init__()
        self.fn, self.precision, self.backend = fn, precision, fn.backend

    def forward(self, rgb, depth):
        return self.fn(rgb.cpu(), depth.cpu()).to(rgb.device)


def wrap_for_evaluation(model, precision: str, size=(480, 640), batch: int = 1) -> ReducedPrecisionModel:
    """`model` through the fastest `precision` CPU path built at batch×size (what `evaluate --precision` runs)."""
    fn = optimize_for_inference(model, "cpu", size[0], size[1], batch=batch, precision=precision)
    return ReducedPrecisionModel(fn, precision)
