"""The CUDA / TensorRT path, checked without a GPU: the meta device stands in for a GPU (models
are built and shapes flow, no values), and fakes stand in for ONNX Runtime's TensorRT provider."""

import copy
import json
import os
import sys
import types

import pytest
import torch

from asymformer import devices
from asymformer.cli import main
from asymformer.deploy import optimize_for_inference, run_benchmark
from asymformer.deploy.accel import cuda_backends
from asymformer.deploy.accel import tensorrt as trt_mod
from asymformer.deploy.common import BackendUnavailable, example_inputs, stdout_to_stderr
from asymformer.deploy.segmenter import Segmenter


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_segmenter_optimize_on_simulated_gpu_leaves_the_callers_model(small_model):
    model = copy.deepcopy(small_model).train()
    before = _state(model)
    seg = Segmenter(model, device="meta", optimize=True, size=(64, 96))
    assert seg.backend == "cuda-fp32" and seg._fn.report["cuda-fp32"]["dry_run"]
    assert seg._fn.report["cuda-fp32"]["tf32"] is False
    assert {p.device.type for p in seg.model.parameters()} == {"meta"}
    assert {p.device.type for p in model.parameters()} == {"cpu"}  # not moved
    assert model.training and not model.info.fused  # not switched to eval, not folded
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_failing_candidate_is_reported_as_skipped(small_model, monkeypatch):
    from asymformer.deploy import backends

    def out_of_memory(model, rgb, depth):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setitem(backends._BUILDERS, "channels_last", out_of_memory)
    fn = optimize_for_inference(small_model, "cpu", 64, 96, candidates=("channels_last", "fused"), iters=1)
    assert fn.backend == "fused"
    assert "OutOfMemoryError" in fn.report["channels_last"]["skipped"]


def test_fp32_calls_run_without_tf32_and_restore_the_global_switches():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, rgb, depth):
            seen.append((torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
                         torch.backends.cudnn.benchmark))
            return rgb[:, :1]
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
              torch.backends.cudnn.benchmark)
    fn, info = cuda_backends.cuda_fp32(Probe(), None, None, device="meta")
    fn(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    assert seen == [("ieee", "ieee", True)] and info["tf32"] is False
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
            torch.backends.cudnn.benchmark) == before


def test_fp16_backend_builds_a_half_model_on_the_named_device(small_model):
    fn, info = cuda_backends.cuda_fp16(small_model, None, None, device="meta")
    out = fn(torch.zeros(1, 3, 64, 96), torch.zeros(1, 1, 64, 96))
    assert out.device.type == "meta" and out.dtype == torch.float32 and out.shape == (1, 5, 64, 96)
    assert info["dtype"] == "float16"
    assert next(small_model.parameters()).dtype == torch.float32  # the caller's model untouched


def test_resolve_device_keeps_the_gpu_index(monkeypatch):
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        devices.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve_device("cuda") == torch.device("cuda", 0)
    assert devices.resolve_device("auto", default_index=3) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="only 2 CUDA GPU"):
        devices.resolve_device("cuda:2")


def test_device_strings_are_parsed_by_resolve_device_only(monkeypatch, small_model):
    """'auto' reaches the deploy entry points unparsed: each asks devices.resolve_device, so the
    answer is a clear message (or the CPU), never torch's "Expected one of cpu, cuda..." error."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="'auto' is not a CUDA GPU"):
        cuda_backends.need_cuda("auto")
    with pytest.raises(BackendUnavailable, match="no CUDA GPU visible to torch"):
        cuda_backends.need_cuda("cuda:1")
    assert cuda_backends.need_cuda("meta") == torch.device("meta")
    from asymformer.deploy.optimize import time_fn

    assert len(time_fn(lambda r, d: r, torch.zeros(1), torch.zeros(1), warmup=0, iters=2, device="auto")) == 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="precision='int8' is a CPU path"):
        optimize_for_inference(small_model, "auto", precision="int8")


def test_bf16_is_native_only_from_ampere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = []
    caps = {0: (7, 5), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: asked.append(d) or caps[d.index])
    assert devices.bf16_native("cuda:0") is False  # Turing: emulated only
    assert devices.bf16_native("cuda:1") is True
    assert [d.index for d in asked] == [0, 1]
    assert devices.bf16_native("cpu") is False


# --------------------------------------------------------------------------- TensorRT with a fake runtime
class _FakeBinding:
    def __init__(self):
        self.inputs, self.outputs = {}, {}

    def bind_input(self, name, device_type, device_id, element_type, shape, ptr):
        self.inputs[name] = (device_type, device_id, tuple(shape))

    def bind_output(self, name, device_type, device_id, element_type, shape, ptr):
        self.outputs[name] = (device_type, device_id, tuple(shape))


def _fake_ort(session_providers):
    ort = types.SimpleNamespace(__version__="9.9-fake", calls=[])

    class Session:
        def __init__(self, path, opts, providers):
            ort.calls.append({"path": path, "providers": providers})
            print("TensorRT notice that must not reach stdout")
            os.write(1, b"native TensorRT notice that must not reach stdout\n")
            self.binding = _FakeBinding()

        def get_providers(self):
            return list(session_providers)

        def io_binding(self):
            return self.binding

        def run_with_iobinding(self, binding):
            ort.runs = getattr(ort, "runs", 0) + 1

    ort.InferenceSession = Session
    ort.SessionOptions = lambda: types.SimpleNamespace()
    ort.GraphOptimizationLevel = types.SimpleNamespace(ORT_ENABLE_ALL=99)
    ort.get_available_providers = lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    return ort


@pytest.fixture
def fake_gpu_runtime(monkeypatch, tmp_path):
    monkeypatch.setenv("ASYMFORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "FakeGPU")
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: types.SimpleNamespace(cuda_stream=1234))

    def install(providers):
        ort = _fake_ort(providers)
        monkeypatch.setitem(sys.modules, "onnxruntime", ort)
        return ort
    return install


def test_tensorrt_fallback_to_cuda_provider_is_skipped_not_measured(small_model, fake_gpu_runtime):
    fake_gpu_runtime(["CUDAExecutionProvider", "CPUExecutionProvider"])
    rgb, depth = torch.zeros(1, 3, 64, 96), torch.zeros(1, 1, 64, 96)
    with pytest.raises(BackendUnavailable, match="did not load TensorRT"):
        trt_mod.tensorrt(small_model, rgb, depth, device="meta")
    report = run_benchmark(small_model, ["tensorrt"], height=64, width=96, warmup=0, iters=1, device="meta")
    assert "did not load TensorRT" in report["results"]["tensorrt"]["skipped"]
    assert "median_ms" not in report["results"]["tensorrt"]


def test_tensorrt_engine_cache_is_stable_and_io_is_bound(small_model, fake_gpu_runtime, tmp_path, capfd):
    ort = fake_gpu_runtime(["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    rgb, depth = torch.zeros(1, 3, 64, 96), torch.zeros(1, 1, 64, 96)
    fn, info = trt_mod.tensorrt(small_model, rgb, depth, device="meta")
    assert info["providers"][0] == "TensorrtExecutionProvider" and info["io_binding"]
    folder = tmp_path / "cache" / "tensorrt"
    assert info["cache"].startswith(str(folder)) and os.path.isfile(os.path.join(info["cache"], "model.onnx"))
    trt_opts = dict(ort.calls[0]["providers"])["TensorrtExecutionProvider"]
    assert trt_opts["trt_fp16_enable"] and trt_opts["trt_engine_cache_path"] == info["cache"]
    assert trt_opts["trt_timing_cache_enable"] and trt_opts["trt_layer_norm_fp32_fallback"]
    assert trt_opts["user_compute_stream"] == "1234"
    out = fn(rgb, depth)
    assert out.shape == (1, 5, 64, 96)
    assert ort.runs == 2  # once at build time (engine build/load), once now
    assert "TensorRT notice" not in capfd.readouterr().out  # native chatter kept off stdout
    # Same weights, shape and precision: the same cache folder (engine reused); other weights: another.
    _, again = trt_mod.tensorrt(small_model, rgb, depth, device="meta")
    assert again["cache"] == info["cache"]
    other = copy.deepcopy(small_model)
    with torch.no_grad():
        other.Decoder.linear_pred.bias.add_(1.0)
    _, changed = trt_mod.tensorrt(other, rgb, depth, device="meta")
    assert changed["cache"] != info["cache"]
    assert len(os.listdir(folder)) == 2


def test_stdout_to_stderr_moves_native_output(capfd):
    with stdout_to_stderr():
        os.write(1, b"native-notice\n")
    captured = capfd.readouterr()
    assert "native-notice" in captured.err and "native-notice" not in captured.out


def test_onnx_has_no_constant_beyond_fp16(small_model, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from asymformer.deploy import export_onnx

    path = tmp_path / "m.onnx"
    export_onnx(small_model, path, height=64, width=96, check=False)
    graph = onnx.load(str(path)).graph
    arrays = [numpy_helper.to_array(t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant":
            arrays += [numpy_helper.to_array(a.t) for a in node.attribute if a.type == onnx.AttributeProto.TENSOR]
    import numpy as np

    finite = [np.abs(a[np.isfinite(a)]).max() for a in arrays if a.dtype.kind == "f" and np.isfinite(a).any()]
    assert finite and max(finite) <= 65504.0


def test_benchmark_exits_non_zero_when_nothing_was_measured(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("GPU present: the CUDA backends would be measured")
    out = tmp_path / "b.json"
    rc = main(["benchmark", "--model", "asymformer_b0_a", "--size", "64x96",
               "--backends", "cuda-fp32,tensorrt", "--iters", "1", "--warmup", "0", "--out", str(out)])
    assert rc == 1
    report = json.loads(out.read_text())
    assert all("skipped" in r for r in report["results"].values())
    assert "no backend could be measured" in capsys.readouterr().err


def test_benchmark_rows_of_cuda_backends(small_model, monkeypatch):
    """The rows a GPU machine would produce, with stand-in CUDA builders that run on the CPU:
    measured rows carry timings and the accuracy check against eager; a backend that is
    unavailable, or that fails while being timed, is a row with the reason, never missing."""
    from asymformer.deploy import backends
    from asymformer.deploy.benchmark import compare, measured

    eager = copy.deepcopy(small_model).eval()
    g = torch.Generator().manual_seed(0)
    offset = torch.randn(1, 5, 64, 96, generator=g).sign() * 0.01  # a known error of exactly 0.01
    calls = {"cuda-graphs": 0}

    def exact(model, rgb, depth, device=None):
        return (lambda r, d: eager(r, d)), {"device": "cpu", "dtype": "float32", "tf32": False}

    def off_by_offset(model, rgb, depth, device=None):
        return (lambda r, d: eager(r, d) + offset), {"device": "cpu", "dtype": "float16"}

    def fails_when_timed(model, rgb, depth, device=None):
        def run(r, d):
            calls["cuda-graphs"] += 1
            if calls["cuda-graphs"] > 1:  # the check call passes, the first timed one fails
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return eager(r, d)
        return run, {"device": "cpu", "dtype": "float16"}

    def unavailable(model, rgb, depth, device=None):
        raise BackendUnavailable("onnxruntime has no TensorrtExecutionProvider")

    for name, fake in (("cuda-fp32", exact), ("cuda-fp16", off_by_offset), ("cuda-graphs", fails_when_timed),
                       ("tensorrt", unavailable)):
        monkeypatch.setitem(backends._BUILDERS, name, fake)
    names = ["cuda-fp32", "cuda-fp16", "cuda-graphs", "tensorrt"]
    report = run_benchmark(small_model, names, height=64, width=96, warmup=1, iters=3, device="cuda:0")
    res = report["results"]
    assert list(res) == names and measured(report) == ["cuda-fp32", "cuda-fp16"]
    for name in ("cuda-fp32", "cuda-fp16"):
        row = res[name]
        assert row["iters"] == 3 and 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"] < float("inf")
        assert row["fps"] == pytest.approx(1000 / row["median_ms"], rel=1e-2) and row["build_s"] >= 0
    assert res["cuda-fp32"]["max_abs_diff"] == 0.0 and res["cuda-fp32"]["matches_eager"]
    assert res["cuda-fp32"]["argmax_agreement"] == 1.0 and res["cuda-fp32"]["tf32"] is False
    assert res["cuda-fp16"]["max_abs_diff"] == pytest.approx(0.01, rel=1e-5)
    assert res["cuda-fp16"]["matches_eager"] is False and res["cuda-fp16"]["dtype"] == "float16"
    with torch.no_grad():  # the benchmark's inputs are fixed, so the agreement can be recomputed
        ref = eager(*example_inputs(1, 64, 96))
    agree = float(((ref + offset).argmax(1) == ref.argmax(1)).float().mean())
    assert res["cuda-fp16"]["argmax_agreement"] == pytest.approx(agree, abs=1e-6) and agree < 1.0
    assert res["cuda-graphs"] == {"skipped": "failed: RuntimeError: CUDA error: an illegal memory access was "
                                             "encountered"}
    assert res["tensorrt"] == {"skipped": "onnxruntime has no TensorrtExecutionProvider"}
    lines = compare(report)
    assert any(line.startswith("cuda-graphs") and "skipped: failed: RuntimeError" in line for line in lines)
    assert any(line.startswith("cuda-fp16") and "1.0e-02" in line for line in lines)
