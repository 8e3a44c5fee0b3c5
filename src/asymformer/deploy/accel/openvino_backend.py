"""OpenVINO as an optional CPU engine (`pip install asymformer[openvino]`), FP32, INT8 and bf16.

It reads the same ONNX files as ONNX Runtime (exported channels-first, `export_onnx`), so the
two run side by side in one benchmark. FP32 sets INFERENCE_PRECISION_HINT=f32 explicitly: on
CPUs with bf16 hardware OpenVINO would otherwise switch to bf16 on its own and stop matching
eager. The logits leave the engine in NHWC, the layout its kernels produce, and are handed back
as an NCHW view: converting a 40×480×640 map to NCHW inside the engine was a tenth of the run.

INT8 is OpenVINO's own static quantisation through NNCF (calibrated on synthetic rooms, or the
frames given), restricted to the layers where INT8 costs no accuracy: ConvNeXt's pointwise
convolutions and its stage 2-4 down-sampling convolutions, the MiT and CMA linear layers and the
attention products, with symmetric activations (NNCF's PERFORMANCE preset: no zero points for the
kernels to correct). Depthwise convolutions (OpenVINO runs them in FP32 anyway), the image and
depth patch embeddings (the depth ones cost 0.4 mIoU points), LAFS, the fusion convolutions, the
decoder and the classifier stay FP32. INT8 and bf16 graphs take ConvNeXt's channel norms in one
pass (`ChannelLayerNorm(one_pass=)`): faster, and within their own rounding; FP32 graphs stay
exact. Without VNNI the x86 INT8 kernels sum pairs of u8×s8 products in a saturating int16
(`cpu.int8_scheme`), so there the weights are kept to 7 bits (NNCF's overflow fix) and the attention
products, whose both operands are activations at full 8-bit range, stay FP32 (nothing bounds them).
With VNNI, 8-bit weights and INT8 attention products.
Measured speed and accuracy: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import torch

from ..common import BackendUnavailable, PerShape, ReusedOutputs, numpy_feeds, quiet_libraries, stdout_to_stderr
from ..cpu import int8_scheme
from .export import remove_onnx, temp_onnx_file

HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
# Node-name patterns (of our ONNX export) that INT8 leaves in float: see the module docstring.
INT8_FLOAT_PATTERNS = (".*fus_atten.*", ".*linear_pred.*", ".*down_sample_1/rgb_stem.*", ".*depth_stem.*",
                       ".*/sr/.*", ".*SCC/conv.*", ".*Decoder.*")
INT8_CALIBRATION_FRAMES = 8


def _core():
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailable("openvino is not installed: pip install asymformer[openvino]") from None
    return ov.Core()


def _nhwc_output(ov_model):
    """The same model with its (NCHW) logits delivered in NHWC: no reorder at the end of the graph."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    ppp.output(0).tensor().set_layout(ov.Layout("NHWC"))
    ppp.output(0).model().set_layout(ov.Layout("NCHW"))
    return ppp.build()


def overflow_fix(scheme: dict):
    """NNCF's OverflowFix for `scheme` (cpu.int8_scheme): 7-bit weights everywhere without VNNI."""
    from nncf.quantization.advanced_parameters import OverflowFix

    return OverflowFix.ENABLE if scheme["weight_bits"] == 7 else OverflowFix.DISABLE


def float_types(scheme: dict) -> list[str]:
    """Operation types kept FP32 in OpenVINO INT8 for `scheme` (cpu.int8_scheme).

    Depthwise convolutions always. Without VNNI (7-bit weights) every MatMul too: the attention
    products (activation × activation: the overflow fix cannot bound an activation operand, so
    `vpmaddubsw` could saturate) and the linear layers, whose INT8 kernel there (oneDNN's legacy
    `jit_gemm_i8`) was slower than the FP32 one (MLAS): 78 against 65 ms per inference. As an AVX2
    CPU, in three interleaved runs, the whole INT8 model took 0.72-0.82× FP32 with them INT8 and
    0.71-0.75× without (2-8 % faster; agreement 0.9947 → 0.9951; benchmarks/RESULTS.md, issue 26)."""
    return ["GroupConvolution", "MatMul"] if scheme["weight_bits"] == 7 else ["GroupConvolution"]


def quantize_int8(ov_model, frames, scheme: dict | None = None):
    """NNCF static INT8 of an OpenVINO model, calibrated on `frames` [(rgb, depth) float32 arrays],
    with this CPU's weight format unless `scheme` says otherwise."""
    try:
        import nncf
    except ImportError:
        raise BackendUnavailable("openvino-int8 needs NNCF: pip install asymformer[openvino]") from None
    import logging

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    nncf.set_log_level(logging.ERROR)  # its progress bars would land in the JSON on stdout
    scheme = scheme or int8_scheme()
    scope = nncf.IgnoredScope(patterns=list(INT8_FLOAT_PATTERNS), types=float_types(scheme), validate=False)
    dataset = nncf.Dataset(list(frames), lambda f: {"rgb": f[0], "depth": f[1]})
    with stdout_to_stderr(), quiet_libraries():  # native prints to stderr, Python-level ones held back
        return nncf.quantize(ov_model, dataset, subset_size=len(frames), model_type=nncf.ModelType.TRANSFORMER,
                             preset=nncf.QuantizationPreset.PERFORMANCE, ignored_scope=scope,
                             advanced_parameters=AdvancedQuantizationParameters(
                                 overflow_fix=overflow_fix(scheme)))


def compile_onnx(path, precision: str = "fp32", threads: int | None = None, frames=None):
    """An OpenVINO CPU compiled model for the ONNX file at `path`, latency mode, `threads` threads.

    precision="int8" quantises first, calibrated on `frames` (needed then)."""
    core = _core()
    config = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()), "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": HINTS[precision]}
    try:
        ov_model = core.read_model(str(path))
        if precision == "int8":
            ov_model = quantize_int8(ov_model, frames)
        return core.compile_model(_nhwc_output(ov_model), "CPU", config)
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - conversion/compilation errors come in many types
        raise BackendUnavailable(f"OpenVINO cannot compile {path}: {type(exc).__name__}: {str(exc)[:300]}") from None


def _calibration(model, r, d) -> list:
    """Synthetic-room frames at the model's input shape, normalised as the model expects."""
    from asymformer.models.info import info_of

    from .quantize import calibration_frames

    info = info_of(model)
    frames, _ = calibration_frames(None, INT8_CALIBRATION_FRAMES, r.shape[-2], r.shape[-1],
                                   info.normalization if info is not None else None, batch=r.shape[0])
    return frames


class _OpenVINOSlot:
    """An infer request of `compiled`; `array` is its own output memory (NHWC), which each run
    fills in place (requests do not share output memory)."""

    def __init__(self, compiled):
        self.request = compiled.create_infer_request()
        self.array = self.request.get_output_tensor(0).data

    def run(self, feeds):
        self.request.infer(feeds, share_inputs=True, share_outputs=True)


def build_openvino(model, rgb, depth, precision: str = "fp32"):
    """`(fn, info)` running `model` in OpenVINO at the shape of rgb/depth (other shapes compile anew)."""
    _core()  # fail fast, before any export, when openvino is missing

    def build(r, d):
        frames = _calibration(model, r, d) if precision == "int8" else None
        # Reduced precision takes the faster, not bit-exact, norms (ChannelLayerNorm(one_pass=)).
        path = temp_onnx_file(model, r, d, one_pass_norms=precision != "fp32")
        try:
            compiled = compile_onnx(path, precision, frames=frames)
        finally:
            remove_onnx(path)
        outputs = ReusedOutputs(lambda: _OpenVINOSlot(compiled))

        def run(r2, d2):
            return torch.from_numpy(outputs(numpy_feeds(r2, d2))).permute(0, 3, 1, 2)  # NCHW view of NHWC memory
        return run
    import openvino as ov

    info = {"device": "cpu", "precision": precision, "engine": f"openvino {ov.__version__}",
            "inference_precision_hint": HINTS[precision], "output_memory": "NHWC (an NCHW view)"}
    if precision == "int8":
        scheme = int8_scheme()
        info["int8_scheme"] = scheme
        info["quantization"] = (f"NNCF static INT8 (per-channel {scheme['weight_bits']}-bit weights, "
                                f"{INT8_CALIBRATION_FRAMES} synthetic rooms): "
                                "pointwise and stage 2-4 down-sampling convolutions"
                                + (", linear layers and attention products" if scheme["weight_bits"] == 8 else "")
                                + ", symmetric activations; the rest FP32")
    return PerShape(build, rgb, depth), info
