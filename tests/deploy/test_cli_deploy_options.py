"""`asymformer export / benchmark / predict` options exercised through the CLI, checked by what
they produce: ONNX graphs run in ONNX Runtime, benchmark tables and JSON, progress bars."""

import json
import re

import pytest
import torch

from asymformer.cli import main

from .conftest import assert_onnx_matches_torch

onnxruntime = pytest.importorskip("onnxruntime")


def test_export_dynamic_runs_at_other_batches_and_sizes(checkpoint, small_model, tmp_path, capsys):
    out = tmp_path / "dynamic.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--size", "64x96", "--dynamic",
                 "--no-check"]) == 0
    text = capsys.readouterr().out
    assert "dynamic batch/height/width" in text and "ONNX Runtime check" not in text  # --no-check: no check
    sess = onnxruntime.InferenceSession(str(out))
    b, c, h, w = sess.get_inputs()[0].shape
    assert c == 3 and not any(isinstance(d, int) for d in (b, h, w))  # symbolic axes
    for size in ((1, 64, 96), (3, 45, 70)):  # another batch, and sides that are not multiples of 32
        assert_onnx_matches_torch(sess, small_model, *size)


def test_export_batch_size_fixes_the_input_batch(checkpoint, small_model, tmp_path, capsys):
    out = tmp_path / "b2.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--size", "64x96",
                 "--batch-size", "2"]) == 0
    assert "ONNX Runtime check at 2x64x96" in capsys.readouterr().out
    sess = onnxruntime.InferenceSession(str(out))
    assert [i.shape for i in sess.get_inputs()] == [[2, 3, 64, 96], [2, 1, 64, 96]]
    assert_onnx_matches_torch(sess, small_model, 2, 64, 96)
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # static: batch 1 is refused
        assert_onnx_matches_torch(sess, small_model, 1, 64, 96)


def test_benchmark_compare_table_and_threads(tmp_path, capsys):
    torch.set_num_threads(2)  # the conftest fixture restores it; --threads must win over this
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--model", "asymformer_b0_a", "--size", "64x96", "--backends", "eager,fused",
                 "--warmup", "0", "--iters", "2", "--threads", "1", "--compare", "--no-progress",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    assert report["environment"]["threads"] == 1 and torch.get_num_threads() == 1
    assert report["config"]["height"] == 64 and report["config"]["width"] == 96 and report["config"]["batch"] == 1
    title, *lines = captured.out.splitlines()
    assert title == "asymformer_b0_a at 64x96, batch 1"  # the table names the model it timed
    assert "vs eager" in lines[0] and "median ms" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"eager", "fused"}
    res = report["results"]
    assert rows["eager"][4] == "1.00x"
    assert rows["fused"][4] == f"{res['eager']['median_ms'] / res['fused']['median_ms']:.2f}x"
    assert float(rows["fused"][1]) == pytest.approx(res["fused"]["median_ms"], abs=0.051)
    assert "benchmark:" not in captured.err  # --no-progress


def test_benchmark_progress_goes_to_stderr_so_json_stays_clean(tmp_path, capsys):
    assert main(["benchmark", "--model", "asymformer_b0_a", "--size", "64x96", "--backends", "eager",
                 "--warmup", "0", "--iters", "1"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["results"]["eager"]["median_ms"] > 0  # stdout: only the JSON
    assert "benchmark: building eager" in captured.err


@pytest.mark.parametrize("progress", ["--progress", "--no-progress"])
def test_predict_progress_flag_reaches_the_bar(checkpoint, make_frame, tmp_path, capsys, progress):
    from PIL import Image

    rgb, depth = make_frame(40, 56)
    Image.fromarray(rgb).save(tmp_path / "a_rgb.png")
    Image.fromarray(depth).save(tmp_path / "a_depth.png")
    assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "a_rgb.png"),
                 "--depth", str(tmp_path / "a_depth.png"), "--out", str(tmp_path / "out"), "--device", "cpu",
                 progress]) == 0
    bar = re.search(r"predict: 1/1 frame \(100%\)", capsys.readouterr().err)  # a log line (not a terminal)
    assert bool(bar) == (progress == "--progress")
