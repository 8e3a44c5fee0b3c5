"""Reduced-precision CPU inference (INT8, bf16): backends and `optimize_for_inference(precision=...)`.

These paths cannot match eager FP32 to 1e-4, so they are judged by what a user sees: the
argmax (class per pixel) must agree with FP32 on real-looking frames (synthetic rooms) for at
least `min_agreement` of the pixels, and max |Δ| of the logits is reported next to it.
bf16 is offered only where the CPU computes it natively (AVX-512 BF16 / AMX-BF16, read from
/proc/cpuinfo); elsewhere it is reported unavailable rather than emulated at a loss.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from .backends import BackendUnavailable, fused_copy
from .cpu import has_native_bf16

PRECISIONS = ("fp32", "int8", "bf16")
INT8_CANDIDATES = ("onnxruntime-int8", "openvino-int8")
BF16_CANDIDATES = ("cpu-bf16", "openvino-bf16")
REDUCED_BACKENDS = INT8_CANDIDATES + BF16_CANDIDATES


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def require_native_bf16() -> None:
    """BackendUnavailable with the reason when bf16 would be emulated on this CPU."""
    if not has_native_bf16():
        raise BackendUnavailable("bf16 unavailable: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16 "
                                 "in /proc/cpuinfo), so bf16 would be emulated and slower than FP32; use "
                                 "precision='int8' or 'fp32'")


class PerShape:
    """Run a shape-specialised callable built on demand for each new input shape (then cached).

    INT8 ONNX files and OpenVINO models are compiled for one shape; a new shape builds a new one
    (tens of seconds) instead of silently running another precision.
    """

    def __init__(self, factory, rgb, depth):
        self.factory, self.cache = factory, {}
        self.cache[self._key(rgb, depth)] = factory(rgb, depth)

    @staticmethod
    def _key(rgb, depth):
        return tuple(rgb.shape), tuple(depth.shape)

    def __call__(self, rgb, depth):
        key = self._key(rgb, depth)
        if key not in self.cache:
            self.cache[key] = self.factory(rgb, depth)
        return self.cache[key](rgb, depth)


def ort_int8_file(model, rgb, depth) -> str:
    """A temporary INT8 ONNX file for `model` at the shape of rgb/depth (caller deletes it)."""
    from .backends import _onnx_file
    from .quantize import quantize_onnx

    fp32 = _onnx_file(model, rgb, depth)
    out = fp32[:-5] + ".int8.onnx"
    try:
        quantize_onnx(fp32, out)
    except ImportError as exc:
        raise BackendUnavailable(str(exc)) from None
    finally:
        for p in (fp32, fp32 + ".data"):
            if os.path.exists(p):
                os.unlink(p)
    return out


def _ort_int8(model, rgb, depth):
    from .backends import ort_session

    def build(r, d):
        path = ort_int8_file(model, r, d)
        try:
            sess = ort_session(path)
        finally:
            os.unlink(path)

        def run(r2, d2):
            out = sess.run(["logits"], {"rgb": r2.detach().cpu().numpy(), "depth": d2.detach().cpu().numpy()})
            return torch.from_numpy(out[0])
        return run
    info = {"device": "cpu", "precision": "int8", "engine": "onnxruntime",
            "quantization": "dynamic int8 MatMul/Gemm, per-channel weights; LAFS, softmax, LayerNorm, "
                            "attention products and classifier in float"}
    return PerShape(build, rgb, depth), info


def _cpu_bf16(model, rgb, depth):
    """PyTorch with bf16 weights and activations in channels-last (oneDNN's native bf16 kernels)."""
    require_native_bf16()
    m = fused_copy(model).to(torch.bfloat16).to(memory_format=torch.channels_last)

    def run(r, d):
        cl = torch.channels_last
        with torch.inference_mode():
            return m(r.to(torch.bfloat16).contiguous(memory_format=cl),
                     d.to(torch.bfloat16).contiguous(memory_format=cl)).float().contiguous()
    return run, {"device": "cpu", "precision": "bf16", "engine": "torch", "memory_format": "channels_last"}


def _openvino(model, rgb, depth):
    from .openvino_backend import build_openvino

    return build_openvino(model, rgb, depth, precision="fp32")


def _openvino_int8(model, rgb, depth):
    from .openvino_backend import build_openvino

    return build_openvino(model, rgb, depth, precision="int8")


def _openvino_bf16(model, rgb, depth):
    from .openvino_backend import build_openvino

    require_native_bf16()
    return build_openvino(model, rgb, depth, precision="bf16")


BUILDERS = {"onnxruntime-int8": _ort_int8, "cpu-bf16": _cpu_bf16, "openvino": _openvino,
            "openvino-int8": _openvino_int8, "openvino-bf16": _openvino_bf16}


# --------------------------------------------------------------------------- choosing
def pixel_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of pixels whose argmax class is the same in logits a and b."""
    return float((a.float().argmax(1) == b.float().argmax(1)).float().mean())


def check_frames(height: int, width: int, batch: int, normalization=None, num: int = 2):
    """A few synthetic-room frames at the model size: the reduced-precision checks' inputs."""
    from .quantize import calibration_frames

    frames, _ = calibration_frames(None, num, height, width, normalization)
    return [(torch.from_numpy(np.repeat(r, batch, 0)), torch.from_numpy(np.repeat(d, batch, 0))) for r, d in frames]


def optimize_reduced(model, precision: str, height: int, width: int, batch: int = 1, candidates=None,
                     iters: int = 3, warmup: int = 1, min_agreement: float = 0.98, verbose: bool = False):
    """The fastest `precision` ("int8" / "bf16") CPU path whose argmax agrees with FP32 on synthetic rooms."""
    from .backends import build_backend
    from .optimize import InferenceFn, summarize, time_fn

    check_precision(precision)
    pool = INT8_CANDIDATES if precision == "int8" else BF16_CANDIDATES
    candidates = tuple(candidates or pool)
    bad = [c for c in candidates if c not in pool]
    if bad:
        raise ValueError(f"candidates {bad} are not {precision} backends; choose from {', '.join(pool)}")
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()  # the caller's model stays where it is
    model.eval()
    frames = check_frames(height, width, batch, getattr(model, "normalization", None))
    with torch.inference_mode():
        refs = [model(r, d) for r, d in frames]
    report, best = {}, None
    for name in candidates:
        try:
            fn, info = build_backend(name, model, *frames[0])
            with torch.inference_mode():
                outs = [fn(r, d) for r, d in frames]
        except BackendUnavailable as exc:
            report[name] = {"skipped": str(exc)}
            continue
        except (RuntimeError, ValueError) as exc:
            report[name] = {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
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
        reasons = "; ".join(f"{n}: {r.get('skipped') or r.get('rejected')}" for n, r in report.items())
        raise ValueError(f"no {precision} inference path is available or accurate enough here ({reasons})")
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
    from .optimize import optimize_for_inference

    fn = optimize_for_inference(model, "cpu", size[0], size[1], batch=batch, precision=precision)
    return ReducedPrecisionModel(fn, precision)
