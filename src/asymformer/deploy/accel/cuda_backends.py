"""CUDA inference backends: FP32, FP16, bf16, CUDA graphs and torch.compile on a given GPU.

Every builder takes the target `device` (cuda:1 stays cuda:1), works on a folded copy (the
caller's model is not moved) and returns a callable that runs its calls under the CUDA maths
settings it was checked with (`devices.cuda_math`): FP32 really is FP32 (no TF32), and no
process-wide switch is left flipped for other code.
"""

from __future__ import annotations

import torch

from asymformer import devices

from ..common import BackendUnavailable, ShapeGuard, fused_copy, no_grad


def need_cuda(device) -> torch.device:
    """The CUDA device to use, or BackendUnavailable saying why there is none.

    The meta device passes as a dry run: models are built and shapes flow, with no values,
    which is how the test suite checks this path on machines without a GPU.
    """
    try:
        dev = devices.resolve_device(device if device is not None else "cuda")
    except ValueError as exc:
        build = torch.version.cuda or "none, CPU-only wheel"
        reason = str(exc) if torch.cuda.is_available() else (
            f"no CUDA GPU visible to torch {torch.__version__} (CUDA build: {build})")
        raise BackendUnavailable(reason) from None
    if dev.type not in ("cuda", "meta"):
        raise BackendUnavailable(f"device {str(device)!r} is not a CUDA GPU; CUDA backends need 'cuda' or 'cuda:N'")
    return dev


def _runner(m, dev: torch.device, dtype: torch.dtype):
    """Each call: inputs to `dev` in `dtype`, float32 logits out, under the CUDA maths settings of
    that dtype (IEEE FP32 for float32: "FP32" really is FP32), scoped to the call."""
    def run(r, d):
        with devices.cuda_math(fp32=dtype == torch.float32, benchmark=True), torch.inference_mode():
            return m(r.to(dev, dtype), d.to(dev, dtype)).float()
    return run


def cuda_fp32(model, rgb, depth, device=None):
    dev = need_cuda(device)
    m = fused_copy(model, dev, torch.float32)
    return _runner(m, dev, torch.float32), {"device": str(dev), "dtype": "float32", "tf32": False}


def cuda_fp16(model, rgb, depth, device=None):
    dev = need_cuda(device)
    m = fused_copy(model, dev, torch.float16)
    return _runner(m, dev, torch.float16), {"device": str(dev), "dtype": "float16"}


def cuda_bf16(model, rgb, depth, device=None):
    dev = need_cuda(device)
    if not devices.bf16_native(dev):
        raise BackendUnavailable(f"{torch.cuda.get_device_name(dev)} has no native bfloat16 (pre-Ampere "
                                 f"GPUs only emulate it); use cuda-fp16")
    m = fused_copy(model, dev, torch.bfloat16)
    return _runner(m, dev, torch.bfloat16), {"device": str(dev), "dtype": "bfloat16"}


def cuda_graphs(model, rgb, depth, device=None):
    """FP16 model replayed from a captured CUDA graph: no per-kernel launch cost at batch 1."""
    dev = need_cuda(device)
    m = fused_copy(model, dev, torch.float16)
    static_r, static_d = rgb.to(dev, torch.float16), depth.to(dev, torch.float16)
    with torch.cuda.device(dev), devices.cuda_math(fp32=False), torch.inference_mode():
        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream):
            for _ in range(3):
                m(static_r, static_d)
        torch.cuda.current_stream(dev).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = m(static_r, static_d)

    def run(r, d):
        static_r.copy_(r)
        static_d.copy_(d)
        graph.replay()
        return static_out.float()
    guard = ShapeGuard(no_grad(run), (tuple(rgb.shape), tuple(depth.shape)), _runner(m, dev, torch.float16),
                       "cuda-graphs")
    return guard, {"device": str(dev), "dtype": "float16"}


def cuda_compile(model, rgb, depth, device=None):
    """torch.compile (inductor, max-autotune) of the FP16 folded model."""
    dev = need_cuda(device)
    m = fused_copy(model, dev, torch.float16)
    fn = _runner(torch.compile(m, dynamic=False, mode="max-autotune"), dev, torch.float16)
    try:
        fn(rgb, depth)  # compile now, so timing excludes it
    except Exception as exc:  # noqa: BLE001 - no Triton, unsupported op, ...
        raise BackendUnavailable(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:300]}") from None
    return fn, {"device": str(dev), "dtype": "float16", "compiler": "inductor", "mode": "max-autotune"}


BUILDERS = {"cuda-fp32": cuda_fp32, "cuda-fp16": cuda_fp16, "cuda-bf16": cuda_bf16,
            "cuda-graphs": cuda_graphs, "cuda-compile": cuda_compile}
