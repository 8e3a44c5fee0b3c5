"""OpenVINO as an optional CPU engine (`pip install asymformer[openvino]`), FP32, INT8 and bf16.

It reads the same ONNX files as ONNX Runtime, so the two run side by side in one benchmark.
FP32 sets INFERENCE_PRECISION_HINT=f32 explicitly: on CPUs with bf16 hardware OpenVINO would
otherwise switch to bf16 on its own and stop matching eager. INT8 runs the ONNX Runtime INT8
file (OpenVINO's own post-training quantisation needs NNCF, which this project does not use).
Whether its FP32 beats ONNX Runtime's depends on the CPU and its load (benchmarks/RESULTS.md), so
`optimize_for_inference` measures it as an FP32 candidate when it is installed.
"""

from __future__ import annotations

import torch

from .common import BackendUnavailable, PerShape
from .export import remove_onnx, temp_onnx_file
from .quantize import ort_int8_file

HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}


def _core():
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailable("openvino is not installed: pip install asymformer[openvino]") from None
    return ov.Core()


def compile_onnx(path, precision: str = "fp32", threads: int | None = None):
    """An OpenVINO CPU compiled model for the ONNX file at `path`, latency mode, `threads` threads."""
    core = _core()
    config = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()), "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": HINTS[precision]}
    try:
        return core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as exc:  # noqa: BLE001 - conversion/compilation errors come in many types
        raise BackendUnavailable(f"OpenVINO cannot compile {path}: {type(exc).__name__}: {str(exc)[:300]}") from None


def build_openvino(model, rgb, depth, precision: str = "fp32"):
    """`(fn, info)` running `model` in OpenVINO at the shape of rgb/depth (other shapes compile anew)."""
    _core()  # fail fast, before any export, when openvino is missing

    def build(r, d):
        path = ort_int8_file(model, r, d) if precision == "int8" else temp_onnx_file(model, r, d)
        try:
            compiled = compile_onnx(path, precision)
        finally:
            remove_onnx(path)
        request = compiled.create_infer_request()
        output = compiled.output(0)

        def run(r2, d2):
            res = request.infer({"rgb": r2.detach().cpu().numpy(), "depth": d2.detach().cpu().numpy()})
            return torch.from_numpy(res[output].copy())
        return run
    import openvino as ov

    info = {"device": "cpu", "precision": precision, "engine": f"openvino {ov.__version__}",
            "inference_precision_hint": HINTS[precision]}
    return PerShape(build, rgb, depth), info
