"""Inference backends: each turns a model into a `(rgb, depth) -> logits` callable or says why not.

`benchmark` measures them all, `optimize_for_inference` picks the fastest exact one. Every
builder raises `BackendUnavailable(reason)` instead of failing, so a missing GPU or package
becomes one "skipped: reason" line in the benchmark JSON. CPU builders live here; the CUDA
ones in accel/cuda_backends.py and TensorRT in accel/tensorrt.py.
"""

from __future__ import annotations

import copy
import warnings

import torch

from .accel.cuda_backends import BUILDERS as CUDA_BUILDERS
from .accel.export import remove_onnx, temp_onnx_file
from .accel.lowp import BUILDERS as LOWP_BUILDERS
from .accel.lowp import REDUCED_BACKENDS
from .accel.tensorrt import tensorrt
from .common import BackendUnavailable, ShapeGuard, fused_copy, no_grad, ort_runner, ort_session

CPU_BACKENDS = ("eager", "fused", "channels_last", "jit", "compile", "onnxruntime")
# Reduced precision and OpenVINO on the CPU live in accel/lowp.py / accel/openvino_backend.py.
CPU_LOWP_BACKENDS = tuple(LOWP_BUILDERS)
CUDA_BACKENDS = ("cuda-fp32", "cuda-fp16", "cuda-bf16", "cuda-graphs", "cuda-compile", "tensorrt")
ALL_BACKENDS = CPU_BACKENDS + CPU_LOWP_BACKENDS + CUDA_BACKENDS
# Reduced precision cannot match eager FP32 within 1e-4; optimize_for_inference never picks them.
REDUCED_PRECISION = ("cuda-fp16", "cuda-bf16", "cuda-graphs", "cuda-compile", "tensorrt") + REDUCED_BACKENDS

__all__ = ["ALL_BACKENDS", "BackendUnavailable", "backend_device", "build_backend", "fused_copy", "ort_session"]


def backend_device(name: str) -> str:
    return "cuda" if name.startswith("cuda") or name == "tensorrt" else "cpu"


def build_backend(name: str, model: torch.nn.Module, rgb: torch.Tensor, depth: torch.Tensor, device=None):
    """Return `(fn, info)` for backend `name` specialised to example inputs rgb/depth (CPU FP32).

    `device` picks the GPU of CUDA backends (default cuda:0); CPU backends ignore it. The
    caller's model is never moved or modified.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(ALL_BACKENDS)}")
    if backend_device(name) == "cuda":
        return _BUILDERS[name](model, rgb, depth, device=device)
    return _BUILDERS[name](model, rgb, depth)


# --------------------------------------------------------------------------- CPU
def _eager(model, rgb, depth):
    return no_grad(copy.deepcopy(model).eval().to("cpu", torch.float32)), {"device": "cpu"}


def _fused(model, rgb, depth):
    return no_grad(fused_copy(model, "cpu", torch.float32)), {"device": "cpu", "bn_folded": True}


def _channels_last(model, rgb, depth):
    m = fused_copy(model, "cpu", torch.float32).to(memory_format=torch.channels_last)

    def run(r, d):
        return m(r.contiguous(memory_format=torch.channels_last),
                 d.contiguous(memory_format=torch.channels_last)).contiguous()
    return no_grad(run), {"device": "cpu", "bn_folded": True, "memory_format": "channels_last"}


def _jit(model, rgb, depth):
    m = fused_copy(model, "cpu", torch.float32)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation and tracer notes: the shape guard handles them
            traced = torch.jit.trace(m, (rgb, depth), check_trace=False)
            # freeze only: torch.jit.optimize_for_inference's MKL-DNN rewrites were 0-7 % slower at 240×320
            # with 1-2 threads on both models (interleaved runs, 2-core EPYC, torch 2.13)
            frozen = torch.jit.freeze(traced.eval())
    except Exception as exc:  # noqa: BLE001 - any tracer failure means "not available"
        raise BackendUnavailable(f"torch.jit.trace/freeze failed: {type(exc).__name__}: {exc}") from None
    shapes = (tuple(rgb.shape), tuple(depth.shape))
    return no_grad(ShapeGuard(frozen, shapes, m, "jit")), {"device": "cpu", "static_shape": list(rgb.shape)}


def _compile(model, rgb, depth):
    try:
        import torch._inductor  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        raise BackendUnavailable(f"torch.compile (inductor) unavailable: {exc}") from None
    m = fused_copy(model, "cpu", torch.float32)
    fn = torch.compile(m, dynamic=False)
    try:
        with torch.inference_mode():
            fn(rgb, depth)  # compile now, so timing excludes it
    except Exception as exc:  # noqa: BLE001 - no C++ compiler, unsupported op, ...
        raise BackendUnavailable(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:300]}") from None
    return no_grad(fn), {"device": "cpu", "bn_folded": True, "compiler": "inductor"}


def _onnxruntime(model, rgb, depth):
    """ONNX Runtime FP32 on the channels-first graph (ConvNeXt's MLP as 1×1 convolutions). The Linear
    form (`export_onnx(channels_first=False)`) was slower on AVX-512 and on AVX2 alike (1.11× and
    1.06×, benchmarks/RESULTS.md, "CPUs met"), so it is not a candidate."""
    path = temp_onnx_file(model, rgb, depth)
    try:
        run = ort_runner(ort_session(path))
    finally:
        remove_onnx(path)
    shapes = (tuple(rgb.shape), tuple(depth.shape))
    info = {"device": "cpu", "graph_optimization": "ORT_ENABLE_ALL",
            "intra_op_threads": torch.get_num_threads(), "static_shape": list(rgb.shape)}
    return ShapeGuard(run, shapes, no_grad(fused_copy(model, "cpu", torch.float32)), "onnxruntime"), info


_BUILDERS = {
    "eager": _eager, "fused": _fused, "channels_last": _channels_last, "jit": _jit,
    "compile": _compile, "onnxruntime": _onnxruntime, **LOWP_BUILDERS, **CUDA_BUILDERS, "tensorrt": tensorrt,
}
