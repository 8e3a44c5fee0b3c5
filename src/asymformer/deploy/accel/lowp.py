"""Reduced-precision CPU inference (INT8, bf16) and OpenVINO: the backends. Choosing among them is
`optimize_for_inference(precision=...)` in deploy/optimize.py.

These paths cannot match eager FP32 to 1e-4, so they are judged by what a user sees: the
argmax (class per pixel) must agree with FP32 on real-looking frames (synthetic rooms) for at
least `min_agreement` of the pixels, and max |Δ| of the logits is reported next to it.
bf16 is offered only where the CPU computes it natively (AVX-512 BF16 / AMX-BF16, read from
/proc/cpuinfo); elsewhere it is reported unavailable rather than emulated at a loss.
"""

from __future__ import annotations

import torch

from ..common import BackendUnavailable, PerShape, fused_copy, ort_runner, ort_session
from ..cpu import has_native_bf16, int8_scheme
from .export import remove_onnx
from .openvino_backend import build_openvino
from .quantize import ort_int8_file

PRECISIONS = ("fp32", "int8", "bf16")
INT8_CANDIDATES = ("onnxruntime-int8", "openvino-int8")
BF16_CANDIDATES = ("cpu-bf16", "openvino-bf16")
REDUCED_BACKENDS = INT8_CANDIDATES + BF16_CANDIDATES
CANDIDATES = {"int8": INT8_CANDIDATES, "bf16": BF16_CANDIDATES}  # the paths each reduced precision chooses among


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


def refusal_advice(precision: str, report: dict) -> str:
    """What would make a refused `precision` work, for the one-line refusal: install what is
    missing, or, when the paths ran but disagreed with FP32, why (this CPU's INT8 format) and what
    is left to try. Never "try another CPU" for INT8: 7-bit weights already run right on every x86-64."""
    rejected = [name for name, r in report.items() if "rejected" in r]
    if not rejected:
        if precision == "bf16":
            return "bf16 needs a CPU with avx512_bf16 or amx_bf16 (Cooper Lake, Sapphire Rapids, Zen 4 or newer)"
        return "install the INT8 engines: pip install 'asymformer[onnx,openvino]'"
    if precision == "int8":
        s = int8_scheme()
        return (f"INT8 ran with {s['weight_bits']}-bit weights for {s['isa']} (no saturation), so the model itself "
                "loses its decisions in INT8: train it further (barely trained weights have margins INT8 rounding "
                "flips), or keep precision 'fp32'")
    return "bf16 rounding flips this model's decisions: keep precision 'fp32'"


def _ort_int8(model, rgb, depth):
    def build(r, d):
        path = ort_int8_file(model, r, d)
        try:
            return ort_runner(ort_session(path))
        finally:
            remove_onnx(path)
    scheme = int8_scheme()
    info = {"device": "cpu", "precision": "int8", "engine": "onnxruntime", "int8_scheme": scheme,
            "quantization": f"dynamic int8 MatMul/Gemm, per-channel {scheme['weight_bits']}-bit weights; LAFS, "
                            "softmax, LayerNorm, attention products and classifier in float"}
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
    return build_openvino(model, rgb, depth, precision="fp32")


def _openvino_int8(model, rgb, depth):
    return build_openvino(model, rgb, depth, precision="int8")


def _openvino_bf16(model, rgb, depth):
    require_native_bf16()
    return build_openvino(model, rgb, depth, precision="bf16")


BUILDERS = {"onnxruntime-int8": _ort_int8, "cpu-bf16": _cpu_bf16, "openvino": _openvino,
            "openvino-int8": _openvino_int8, "openvino-bf16": _openvino_bf16}
