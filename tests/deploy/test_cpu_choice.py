"""The CPU decides: its FP32 peak (what the benchmarks compare against) and its INT8 format.

INT8 per CPU: 8-bit weights only where VNNI sums u8×s8 in int32, 7-bit elsewhere (the int16
`vpmaddubsw` path saturates at 255·127·2), for ONNX Runtime and OpenVINO alike, recorded in what the
user sees. The CPU is faked through its flags; the end-to-end paths run on the CPU at hand
(tests/deploy/test_lowp.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from asymformer.deploy import cpu  # noqa: E402
from asymformer.deploy.accel.quantize import quantize_onnx, weight_scheme  # noqa: E402

AVX2_ZEN3 = {"avx2", "fma", "sse4_1"}  # AMD EPYC / Ryzen up to Zen 3
ALDER_LAKE = {"avx2", "fma", "avx_vnni"}  # Intel Core 12th-14th gen, Core Ultra
SKYLAKE_SP = {"avx2", "fma", "avx512f", "avx512bw"}  # AVX-512 without VNNI
ICE_LAKE = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"}
SAPPHIRE_RAPIDS = ICE_LAKE | {"amx_tile", "amx_int8", "amx_bf16"}


@pytest.mark.parametrize("flags, isa, bits", [
    (AVX2_ZEN3, "avx2", 7), (SKYLAKE_SP, "avx512bw", 7), (ALDER_LAKE, "avx_vnni", 8),
    (ICE_LAKE, "avx512_vnni", 8), (SAPPHIRE_RAPIDS, "amx_int8", 8), (set(), "unknown", 7)])
def test_scheme_follows_the_cpu_flags(flags, isa, bits):
    s = cpu.int8_scheme(flags)
    assert (s["isa"], s["weight_bits"], s["vnni"]) == (isa, bits, bits == 8)
    assert ("saturat" in s["why"]) == (bits == 7)


def test_fp32_peak_from_flags_and_clock(tmp_path):
    """2 cores of an AVX2 EPYC at 3.5 GHz: 2 x 32 x 3.5 = 224 GFLOP/s (the issue's figure); AVX-512 doubles."""
    assert cpu.fp32_peak(2, AVX2_ZEN3, 3.5)["gflops"] == 224.0
    assert cpu.fp32_peak(2, ICE_LAKE, 2.8)["gflops"] == 358.4
    assert cpu.fp32_peak(1, {"avx"}, 2.0)["flop_per_cycle"] == 16
    assert "2 cores x 32 FLOP/cycle" in cpu.fp32_peak(2, AVX2_ZEN3, 3.5)["how"]
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz\ncpu MHz\t\t: 1200.0\n")
    assert cpu._clock_ghz(str(info), str(tmp_path / "none")) == (2.5, "model name (nominal)")
    (tmp_path / "max").write_text("3300000\n")
    assert cpu._clock_ghz(str(info), str(tmp_path / "max")) == (3.3, "cpufreq max")
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\ncpu MHz\t\t: 2450.000\n")
    assert cpu._clock_ghz(str(info), str(tmp_path / "none")) == (2.45, "cpu MHz (current)")


def test_weight_scheme_override_and_bad_value(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(ICE_LAKE))
    assert weight_scheme()["weight_bits"] == 8 and weight_scheme("auto")["chosen_for"] == "this CPU"
    assert weight_scheme(7)["weight_bits"] == 7 and weight_scheme("7")["chosen_for"] == "asked for"
    with pytest.raises(ValueError, match="7, 8 or 'auto'"):
        weight_scheme(6)


def _int8_weights(path) -> list[np.ndarray]:
    """The int8 weight initialisers of a quantised ONNX file (MatMulInteger's B operands)."""
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {i.name: i for i in proto.graph.initializer}
    names = {n.input[1] for n in proto.graph.node if n.op_type == "MatMulInteger"}
    return [numpy_helper.to_array(inits[n]) for n in names if n in inits]


@pytest.fixture(scope="module")
def fp32_onnx(trained_model, tmp_path_factory):
    from asymformer.deploy.accel.export import export_onnx

    path = tmp_path_factory.mktemp("scheme") / "fp32.onnx"
    export_onnx(trained_model, path, height=64, width=96, check=False, channels_first=False)
    return path


@pytest.mark.parametrize("flags, limit", [(AVX2_ZEN3, 64), (ALDER_LAKE, 127)])
def test_quantised_weight_range_follows_the_cpu(monkeypatch, fp32_onnx, tmp_path, flags, limit):
    """Without VNNI no quantised weight exceeds 64 in magnitude, so no u8×s8 pair can saturate an
    int16 (255·64·2 = 32,640); with VNNI the full 8-bit range is used."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))
    out = tmp_path / "q.onnx"
    report = quantize_onnx(fp32_onnx, out)
    weights = _int8_weights(out)
    assert weights and all(w.dtype == np.int8 for w in weights)
    peak = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
    assert peak <= limit and peak >= limit - 1, peak
    assert report["weight_bits"] == (7 if limit == 64 else 8) and report["int8_scheme"]["isa"] in flags
    worst = 255 * peak * 2
    assert (worst <= 32767) == (limit == 64)


def test_backend_infos_record_the_scheme(monkeypatch, small_model):
    """What the Segmenter and the benchmark JSON show: the scheme of the CPU the model runs on."""
    from asymformer.deploy.accel import lowp, openvino_backend

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(AVX2_ZEN3))
    for module in (lowp, openvino_backend):  # the infos only: nothing is quantised or compiled
        monkeypatch.setattr(module, "PerShape", lambda build, r, d: build)
    r, d = torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    _, info = lowp.BUILDERS["onnxruntime-int8"](small_model, r, d)
    assert info["int8_scheme"]["weight_bits"] == 7 and "7-bit" in info["quantization"]
    assert cpu.cpu_info()["int8_scheme"]["isa"] == "avx2"
    pytest.importorskip("nncf")
    from nncf.quantization.advanced_parameters import OverflowFix

    assert openvino_backend.overflow_fix(cpu.int8_scheme(AVX2_ZEN3)) == OverflowFix.ENABLE
    assert openvino_backend.overflow_fix(cpu.int8_scheme(ICE_LAKE)) == OverflowFix.DISABLE
    pytest.importorskip("openvino")
    _, ov_info = openvino_backend.build_openvino(small_model, r, d, precision="int8")
    assert ov_info["int8_scheme"]["weight_bits"] == 7 and "7-bit" in ov_info["quantization"]


def test_export_int8_for_another_cpu_is_recorded(monkeypatch, trained_model, tmp_path):
    """A file exported on a VNNI workstation for a robot without VNNI: --int8-weights 7, in its metadata."""
    from asymformer.deploy.accel.export import read_onnx_metadata
    from asymformer.deploy.accel.quantize import export_int8

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(ICE_LAKE))
    out = tmp_path / "robot.onnx"
    export_int8(trained_model, out, height=64, width=96, calibration_frames_num=2, weight_bits=7)
    q = json.loads(read_onnx_metadata(out)["quantization"])
    assert q["weight_bits"] == 7 and q["int8_scheme"]["chosen_for"] == "asked for"
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in _int8_weights(out)) <= 64


@pytest.fixture(scope="module")
def trained_checkpoint(trained_model, tmp_path_factory):
    import asymformer
    from asymformer.data.synthetic import CLASS_NAMES

    path = tmp_path_factory.mktemp("bench") / "tiny.safetensors"
    asymformer.save_model(trained_model, path, class_names=list(CLASS_NAMES), normalization="nyuv2_official")
    return path


def test_benchmark_precision_int8_times_the_chosen_path_beside_fp32(trained_checkpoint, tmp_path, capsys):
    from asymformer.cli import main
    from asymformer.deploy.accel.lowp import INT8_CANDIDATES

    out = tmp_path / "bench.json"
    assert main(["benchmark", "--checkpoint", str(trained_checkpoint), "--size", "64x96", "--precision", "int8",
                 "--backends", "onnxruntime-int8", "--warmup", "0", "--iters", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text())
    p = report["precision"]
    assert p["chosen"] == "onnxruntime-int8" in INT8_CANDIDATES and set(p["candidates"]) == {"onnxruntime-int8"}
    assert set(report["results"]) == {"fused", p["chosen"]}
    assert p["candidates"][p["chosen"]]["pixel_agreement"] >= 0.98
    assert p["int8_scheme"] == cpu.int8_scheme() == report["environment"]["cpu"]["int8_scheme"]
    assert p["vs_fused_fp32"] > 0 and "median_ms" in report["results"][p["chosen"]]


def test_benchmark_precision_refused_says_why_in_one_line(monkeypatch, trained_checkpoint, capsys):
    """Where every INT8 path disagrees with FP32, one line: the CPU, each path's agreement, the INT8
    format used and what is left to try; exit 2, no JSON, no traceback."""
    from asymformer.cli import main
    from asymformer.deploy import optimize

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(AVX2_ZEN3))
    monkeypatch.setattr(optimize, "pixel_agreement", lambda a, b: 0.5)
    monkeypatch.setattr(optimize, "build_backend",  # nothing to quantise: every candidate disagrees anyway
                        lambda name, model, r, d: (lambda r2, d2: model(r2, d2), {"engine": name}))
    assert main(["benchmark", "--checkpoint", str(trained_checkpoint), "--size", "64x96", "--precision", "int8",
                 "--warmup", "0", "--iters", "1"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "error" in line]  # progress lines aside
    assert len(lines) == 1 and not captured.out and "Traceback" not in captured.err, captured
    assert "--precision int8 refused on this CPU" in lines[0] and "pixel agreement 0.5000 < 0.98" in lines[0]
    assert "7-bit weights for avx2" in lines[0] and "fp32" in lines[0] and "Traceback" not in lines[0]


def _quantized_inputs(node) -> bool:
    """Whether an OpenVINO node reads a quantised operand: a FakeQuantize or an 8-bit constant
    behind its inputs (through the reshapes and de-quantising arithmetic NNCF puts there)."""
    for port in node.inputs():
        src = port.get_source_output().get_node()
        while src.get_type_name() in ("Convert", "Reshape", "Transpose", "Unsqueeze", "Multiply", "Subtract"):
            if src.get_type_name() == "Convert" and src.inputs()[0].get_element_type().get_type_name() in ("i8", "u8"):
                return True
            src = src.inputs()[0].get_source_output().get_node()
        if src.get_type_name() == "FakeQuantize":
            return True
    return False


@pytest.mark.parametrize("flags, matmuls_int8", [(AVX2_ZEN3, False), (ICE_LAKE, True)])
def test_openvino_int8_keeps_every_matmul_fp32_without_vnni(monkeypatch, trained_model, flags, matmuls_int8):
    """Without VNNI the attention products (unboundable activations: vpmaddubsw would saturate) and
    the linear layers (whose legacy INT8 kernel there is slower than FP32) stay FP32; with VNNI
    they are INT8. The 1×1 convolutions are INT8 on both."""
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    from asymformer.deploy.accel import openvino_backend as ob
    from asymformer.deploy.accel.export import remove_onnx, temp_onnx_file

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))
    r, d = torch.zeros(1, 3, 64, 96), torch.zeros(1, 1, 64, 96)
    path = temp_onnx_file(trained_model, r, d, one_pass_norms=True)
    try:
        model = ob._core().read_model(str(path))
    finally:
        remove_onnx(path)
    q = ob.quantize_int8(model, ob._calibration(trained_model, r, d)[:2])
    matmuls = [n for n in q.get_ops() if n.get_type_name() == "MatMul"]
    convs = [n for n in q.get_ops() if n.get_type_name() == "Convolution"]
    assert matmuls and convs
    assert any(_quantized_inputs(n) for n in matmuls) == matmuls_int8
    assert any(_quantized_inputs(n) for n in convs)
