"""INT8 ONNX models with ONNX Runtime quantisation, calibrated and checked on real-looking frames.

Why this recipe (measured on asymformer_b0_t, 480×640, 2 threads; see benchmarks/RESULTS.md):
- Gemm/MatMul with constant weights carry most of the time (the ConvNeXt and MiT MLPs), so they
  are quantised dynamically (activation ranges per call, no calibration to get wrong), with
  per-channel INT8 weights. Attention products (both inputs activations) stay in float.
- Precision-sensitive parts stay in float: the LAFS feature selection (its mean/max reductions
  and the small gating MLPs), softmax and LayerNorm (never quantised here), and the classifier.
- Convolutions (depthwise 7×7, patch embeddings, decoder 1×1) can be quantised statically (QDQ,
  per-channel) with calibration ranges; `conv=True` does so. It is off by default because it
  did not pay on the CPUs measured (see RESULTS.md); calibration frames are still used to
  check the quantised model against FP32 and the agreement is stored in the file.
Weights are 8-bit where the CPU has VNNI and 7-bit elsewhere (`cpu.int8_scheme`: without VNNI the
x86 u8×s8 kernels saturate an int16 and the argmax drifts); exports choose for the CPU at hand
unless told `weight_bits=7` (a file for any x86-64 CPU) or 8 (VNNI CPUs only), and record it.
Calibration frames come from the user's dataset folder (`calibration_data`, read with the same
reader and pre-processing as evaluation) or, without one, from synthetic rooms; which one was
used is written into the ONNX file's metadata_props (`asymformer.*`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from asymformer.files import atomic_path, make_folder
from asymformer.models.info import info_of

from ..common import BackendUnavailable, fused_copy, ort_session, quiet_libraries
from ..cpu import int8_scheme
from .export import export_onnx, remove_onnx, set_onnx_metadata, temp_onnx_file

# Float islands: LAFS (spatial/channel selection, its reductions and gating MLPs) and the classifier.
EXCLUDE_PATTERNS = ("/fus_atten/", "/linear_pred/")
DEFAULT_CALIBRATION_FRAMES = 32


def _require_quantization():
    try:
        import onnx  # noqa: F401
        from onnxruntime import quantization  # noqa: F401
    except ImportError:
        raise ImportError("INT8 needs onnx and onnxruntime: pip install asymformer[onnx]") from None


# --------------------------------------------------------------------------- calibration frames
def calibration_frames(data=None, num: int = DEFAULT_CALIBRATION_FRAMES, height: int = 480, width: int = 640,
                       normalization=None, seed: int = 0, progress: bool = False,
                       batch: int = 1) -> tuple[list, str]:
    """`num` normalised (rgb B×3×H×W, depth B×1×H×W) float32 pairs and a description of their source.

    Each frame is repeated `batch` times, the batch of the graph it feeds (calibration, checks).

    `data` is a dataset folder in any layout `open_dataset` reads (train split first, else test;
    frames spread evenly over it) or None for synthetic rooms (frames rendered by seed).
    """
    from asymformer.data import EvalTransform
    from asymformer.progress import progress_bar

    if int(num) < 1:
        raise ValueError(f"calibration frames must be >= 1, got {num}")
    if data is None:
        from asymformer.data import SyntheticRooms

        ds = SyntheticRooms(int(num), height=min(height, 240), width=min(width, 320), seed=seed + 1000)
        source = f"synthetic rooms (seed {seed + 1000}, {int(num)} frames)"
    else:
        ds = _open_calibration_dataset(data)
        source = f"{Path(data).resolve()} ({ds.layout}, {min(int(num), len(ds))} of {len(ds)} frames)"
    ds.transform = EvalTransform(size=(height, width), normalization=normalization or ds.normalization)
    idx = np.unique(np.linspace(0, len(ds) - 1, min(int(num), len(ds))).round().astype(int))
    frames = []
    for i in progress_bar(idx, desc="calibration frames", unit="frame", enabled=progress):
        s = ds[int(i)]
        frames.append((np.repeat(s["rgb"][None].numpy().astype(np.float32), batch, 0),
                       np.repeat(s["depth"][None].numpy().astype(np.float32), batch, 0)))
    return frames, source


def _open_calibration_dataset(data):
    from asymformer.data import open_dataset

    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--calibration-data {data}: not a folder; pass a dataset folder "
                                f"(any layout `asymformer evaluate` reads) or leave it out for synthetic rooms")
    errors = []
    for split in ("train", "test"):
        try:
            return open_dataset(root, split)
        except (FileNotFoundError, ValueError) as exc:
            errors.append(f"{split}: {exc}")
    raise ValueError(f"--calibration-data {data}: cannot read it as a dataset ({'; '.join(errors)})")


class _Reader:
    """onnxruntime.quantization CalibrationDataReader over prepared frames (at the graph's batch)."""

    def __init__(self, frames):
        self.feeds = iter([{"rgb": r, "depth": d} for r, d in frames])

    def get_next(self):
        return next(self.feeds, None)


# --------------------------------------------------------------------------- quantisation
def float_nodes(model_proto, patterns=EXCLUDE_PATTERNS) -> list[str]:
    """Names of the nodes kept in float on purpose (LAFS, classifier)."""
    return [n.name for n in model_proto.graph.node if any(p in n.name for p in patterns)]


def weight_scheme(weight_bits=None) -> dict:
    """The INT8 weight format to write: this CPU's (`cpu.int8_scheme`) or the one asked for (7 / 8)."""
    scheme = int8_scheme()
    if weight_bits in (None, "auto"):
        return {**scheme, "chosen_for": "this CPU"}
    if str(weight_bits) not in ("7", "8"):
        raise ValueError(f"INT8 weight bits must be 7, 8 or 'auto', got {weight_bits!r}")
    bits = int(weight_bits)
    why = ("7-bit weights: exact on every x86-64 CPU (no int16 saturation without VNNI)" if bits == 7 else
           "8-bit weights: for CPUs with VNNI only (avx512_vnni / avx_vnni / amx_int8); elsewhere they saturate")
    return {**scheme, "weight_bits": bits, "why": why, "chosen_for": "asked for"}


def quantize_onnx(fp32_path, out_path, frames=None, conv: bool = False, scheme: dict | None = None) -> dict:
    """Quantise the FP32 ONNX file `fp32_path` into `out_path`; returns what was done.

    MatMul/Gemm: dynamic, per-channel INT8 weights, constant weights only. `conv=True` first
    quantises convolutions statically (QDQ, per-channel) with ranges from `frames`. `scheme`
    (`weight_scheme()`, default this CPU's) decides 8- or 7-bit weights (`reduce_range`).
    """
    _require_quantization()
    scheme = scheme or weight_scheme()
    reduce_range = scheme["weight_bits"] == 7
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    proto = onnx.load(str(fp32_path))
    exclude = float_nodes(proto)
    src = str(fp32_path)
    tmp = None
    if conv:
        if not frames:
            raise ValueError("static convolution quantisation needs calibration frames")
        fd, tmp = tempfile.mkstemp(suffix=".qdq.onnx", prefix="asymformer_")
        os.close(fd)
        with quiet_libraries():
            quantize_static(src, tmp, _Reader(frames), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=exclude, reduce_range=reduce_range,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        src = tmp
    try:
        with quiet_libraries():
            quantize_dynamic(src, str(out_path), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
                             weight_type=QuantType.QInt8, nodes_to_exclude=exclude, reduce_range=reduce_range,
                             extra_options={"MatMulConstBOnly": True})
    finally:
        if tmp:
            remove_onnx(tmp)
    q = onnx.load(str(out_path), load_external_data=False)
    ops = {}
    for n in q.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {"matmul": f"dynamic int8 (per-channel {scheme['weight_bits']}-bit weights, constant B only)",
            "weight_bits": scheme["weight_bits"], "int8_scheme": scheme,
            "conv": "static QDQ int8 (per-channel, MinMax calibration)" if conv else "float",
            "float_nodes": len(exclude), "float_patterns": list(EXCLUDE_PATTERNS),
            "quantized_ops": {k: v for k, v in ops.items() if "Integer" in k or "Quant" in k}}


def agreement(session, model: torch.nn.Module, frames) -> dict:
    """Argmax agreement and max |Δ| of an ONNX Runtime session against the PyTorch model on `frames`."""
    same = total = 0
    diff = 0.0
    for r, d in frames:
        with torch.inference_mode():
            ref = model(torch.from_numpy(r), torch.from_numpy(d)).numpy()
        out = session.run(["logits"], {"rgb": r, "depth": d})[0]
        same += int((out.argmax(1) == ref.argmax(1)).sum())
        total += ref.shape[0] * ref.shape[2] * ref.shape[3]
        diff = max(diff, float(np.abs(out - ref).max()))
    return {"pixel_agreement": round(same / max(total, 1), 6), "max_abs_diff": diff, "frames": len(frames)}


def export_int8(model: torch.nn.Module, path, height: int = 480, width: int = 640, batch: int = 1,
                calibration_data=None, calibration_frames_num: int = DEFAULT_CALIBRATION_FRAMES,
                conv: bool = False, check: bool = True, min_agreement: float = 0.98,
                progress: bool = False, weight_bits=None) -> dict:
    """Export `model` to an INT8 ONNX file at `path` (static shape), record how, check it on the frames.

    weight_bits: None / "auto" for this CPU (8 with VNNI, else 7), 7 for a file that runs right on
    any x86-64 CPU (export on a workstation for a robot without VNNI), 8 for VNNI CPUs only.
    Raises ValueError when the quantised model agrees with FP32 on fewer than `min_agreement` of
    the calibration pixels (the file is not written then).
    """
    _require_quantization()
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"export path {path} must end in .onnx")
    scheme = weight_scheme(weight_bits)  # a bad value fails before minutes of export
    make_folder(path.parent)
    info = info_of(model)
    frames, source = calibration_frames(calibration_data, calibration_frames_num, height, width,
                                        info.normalization if info is not None else None, progress=progress,
                                        batch=batch)
    fd, fp32 = tempfile.mkstemp(suffix=".onnx", prefix="asymformer_fp32_")
    os.close(fd)
    try:
        with atomic_path(path, suffix=".tmp.onnx") as tmp:
            export_onnx(model, fp32, height=height, width=width, batch=batch, check=False,
                        channels_first=False)  # the recipe quantises MatMul (Linear form)
            report = quantize_onnx(fp32, tmp, frames, conv=conv, scheme=scheme)
            report.update({"calibration": source, "shape": [batch, height, width]})
            if check:
                report["check"] = agreement(ort_session(tmp), fused_copy(model, "cpu", torch.float32), frames[:8])
                if report["check"]["pixel_agreement"] < min_agreement:
                    raise ValueError(f"INT8 model agrees with FP32 on only {report['check']['pixel_agreement']:.2%} "
                                     f"of calibration pixels (< {min_agreement:.0%}, {scheme['weight_bits']}-bit "
                                     f"weights on {scheme['isa']}); keep FP32 for this model")
            set_onnx_metadata(tmp, {"precision": "int8", "calibration": source, "check": report.get("check", "skipped"),
                                    "quantization": {k: v for k, v in report.items() if k != "check"}})
    finally:
        remove_onnx(fp32)
    report.update({"path": str(path), "bytes": path.stat().st_size})
    return report


def ort_int8_file(model, rgb, depth, scheme: dict | None = None) -> str:
    """A temporary INT8 ONNX file for `model` at the shape of rgb/depth (caller deletes it),
    quantised for this CPU unless `scheme` says otherwise."""
    fp32 = temp_onnx_file(model, rgb, depth, channels_first=False)  # dynamic INT8 quantises MatMul, not Conv
    out = fp32[:-5] + ".int8.onnx"
    try:
        quantize_onnx(fp32, out, scheme=scheme)
    except ImportError as exc:
        raise BackendUnavailable(str(exc)) from None
    finally:
        remove_onnx(fp32)
    return out
