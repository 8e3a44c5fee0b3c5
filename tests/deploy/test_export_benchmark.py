import json

import pytest
import torch

from asymformer.cli import main
from asymformer.deploy import export_onnx, optimize_for_inference, run_benchmark

from .conftest import assert_onnx_matches_torch

onnxruntime = pytest.importorskip("onnxruntime")


def test_dynamic_onnx_runs_at_two_sizes(small_model, tmp_path):
    path = tmp_path / "m.onnx"
    report = export_onnx(small_model, path, height=64, width=96, dynamic=True)
    assert report["opset"] == 17 and len(report["checks"]) == 2
    sess = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in sess.get_inputs()] == ["rgb", "depth"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    for b, h, w in ((1, 64, 96), (2, 45, 70)):  # the second is not a multiple of 32
        assert_onnx_matches_torch(sess, small_model, b, h, w)


def test_export_bad_arguments(small_model, tmp_path):
    with pytest.raises(ValueError, match=".onnx"):
        export_onnx(small_model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(small_model, tmp_path / "m.onnx", opset=3)


def test_benchmark_json_lists_every_backend(tmp_path, capsys):
    out = tmp_path / "bench.json"
    backends = "eager,fused,channels_last,jit,cuda-fp32,cuda-fp16,cuda-bf16,cuda-graphs,tensorrt"
    rc = main(["benchmark", "--model", "asymformer_b0_a", "--size", "64x96",
               "--backends", backends, "--warmup", "1", "--iters", "2", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    res = report["results"]
    assert list(res) == backends.split(",")
    for name in ("eager", "fused", "channels_last", "jit"):
        assert res[name]["median_ms"] > 0 and res[name]["p90_ms"] >= res[name]["median_ms"]
        assert res[name]["matches_eager"], res[name]
    for name in ("cuda-fp32", "cuda-fp16", "cuda-bf16", "cuda-graphs", "tensorrt"):
        row = res[name]
        if not torch.cuda.is_available():  # listed with the reason, nothing half-measured
            assert list(row) == ["skipped"] and row["skipped"].startswith("no CUDA GPU visible to torch"), row
        elif "median_ms" in row:
            assert 0 < row["median_ms"] <= row["p90_ms"] < float("inf") and row["device"].startswith("cuda")
            assert row["fps"] == pytest.approx(1000 / row["median_ms"], rel=1e-2) and row["iters"] == 2
            assert row["matches_eager"] or name != "cuda-fp32", row  # FP32 without TF32 is exact
            assert row["argmax_agreement"] > 0.9, row
        else:  # a GPU without bf16 or TensorRT: skipped, with the reason
            assert name in ("cuda-bf16", "tensorrt") and len(row["skipped"]) > 10, row
    with pytest.raises(ValueError, match="unknown backend"):
        run_benchmark(torch.nn.Identity(), ["warp-drive"])


def test_optimize_for_inference_picks_a_matching_path(small_model):
    fn = optimize_for_inference(small_model, "cpu", 64, 96, candidates=("fused", "onnxruntime"), iters=2)
    assert fn.backend in ("fused", "onnxruntime")
    assert set(fn.report) == {"fused", "onnxruntime"}
    assert all(r["max_abs_diff"] <= 1e-4 for r in fn.report.values())
    for h, w in ((64, 96), (50, 70)):  # the export size and another one (shape-guarded fallback)
        rgb, depth = torch.randn(1, 3, h, w), torch.randn(1, 1, h, w)
        with torch.no_grad():
            assert (fn(rgb, depth) - small_model(rgb, depth)).abs().max() <= 1e-4


def test_export_cli_reports_the_check(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    rc = main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out),
               "--size", "64x96"])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert "opset 17" in text and "ONNX Runtime check at 1x64x96" in text and "OK" in text
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    norm = json.loads(props["asymformer.normalization"])  # the values, not only a preset name
    assert norm["name"] == "nyuv2_official" and len(norm["rgb_mean"]) == 3 and norm["depth_std"] > 0
    assert json.loads(props["asymformer.class_names"]) == [f"c{i}" for i in range(5)]
    # The whole record travels too, marked folded (the graph is BN-folded), and reads back.
    from asymformer.deploy.accel.export import read_onnx_info

    info = read_onnx_info(out)
    from asymformer import load_model

    saved = load_model(checkpoint).info
    assert info == saved.replace(fused=True) and info.name == "asymformer_b0_a" and info.num_classes == 5


def test_a_variant_that_cannot_export_is_one_clear_error(small_model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::made_up")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ValueError, match="cannot export asymformer_b0_a to ONNX.*made_up"):
        export_onnx(small_model, tmp_path / "m.onnx", height=64, width=96)
    assert not list(tmp_path.iterdir())  # no half-written file left behind


def test_compare_shows_a_dash_for_rows_not_checked_against_eager():
    """An external row (benchmark --precision's chosen path, the authors' model) has no max |Δ|:
    the table says '-', never 'nan'."""
    from asymformer.deploy.benchmark import compare

    row = {"median_ms": 2.0, "p90_ms": 2.1, "fps": 500.0, "mean_ms": 2.0, "iters": 2}
    report = {"config": {"model": "m", "height": 64, "width": 96, "batch": 1},
              "results": {"fused": {**row, "max_abs_diff": 6e-8, "build_s": 0.1}, "onnxruntime-int8": row}}
    lines = compare(report)
    assert "nan" not in "\n".join(lines)
    assert lines[-1].split()[-1] == "-" and "6.0e-08" in lines[-2]
