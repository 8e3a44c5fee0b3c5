"""One thread count for every runtime: torch, ONNX Runtime and OpenVINO read it from `set_threads`,
checked through each runtime's own setting; `auto` and bad values; the CLI flag; benchmark's warnings."""

import pytest
import torch

from asymformer import devices
from asymformer.deploy.benchmark import warnings_for


def test_set_threads_sets_torch(monkeypatch):
    assert devices.set_threads(3) == 3 and torch.get_num_threads() == 3
    assert devices.set_threads("2") == 2 and torch.get_num_threads() == 2
    # inter-op threads can be sized once per process: a later call must not raise
    assert devices.set_threads(1) == 1 and torch.get_num_threads() == 1


def test_auto_reads_omp_num_threads_else_half_the_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert devices.resolve_threads("auto") == 3 and devices.resolve_threads(None) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(devices, "usable_cores", lambda: 8)
    assert devices.resolve_threads("auto") == 4
    monkeypatch.setattr(devices, "usable_cores", lambda: 1)
    assert devices.resolve_threads("auto") == 1


@pytest.mark.parametrize("bad", [0, -2, "many", 1.5])
def test_bad_thread_counts_are_one_clear_error(bad):
    with pytest.raises(ValueError, match="threads must be a whole number >= 1 or 'auto'"):
        devices.set_threads(bad)


@pytest.fixture(scope="module")
def onnx_file(small_model, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from asymformer.deploy import export_onnx

    path = tmp_path_factory.mktemp("threads") / "m.onnx"
    export_onnx(small_model, path, height=64, width=96, check=False)
    return path


def test_onnxruntime_sessions_follow_set_threads(onnx_file):
    from asymformer.deploy.common import ort_session

    devices.set_threads(3)
    opts = ort_session(onnx_file).get_session_options()
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert ort_session(onnx_file, threads=2).get_session_options().intra_op_num_threads == 2


def test_openvino_follows_set_threads(onnx_file):
    pytest.importorskip("openvino")
    from asymformer.deploy.accel.openvino_backend import compile_onnx

    devices.set_threads(2)
    assert int(compile_onnx(onnx_file).get_property("INFERENCE_NUM_THREADS")) == 2


def test_segmenter_threads(small_model):
    from asymformer import Segmenter

    seg = Segmenter(small_model, device="cpu", threads=2)
    assert seg.threads == 2 and torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert Segmenter(small_model, device="cpu").threads == 1  # None leaves the process's setting
    with pytest.raises(ValueError, match="threads"):
        Segmenter(small_model, device="cpu", threads=0)


def test_every_computing_command_takes_threads():
    from asymformer.cli import build_parser

    parser = build_parser()
    base = {"predict": ["--checkpoint", "c", "--rgb", "r", "--depth", "d", "--out", "o"],
            "export": ["--checkpoint", "c", "--out", "o.onnx"], "evaluate": ["--checkpoint", "c", "--data", "d"],
            "train": [], "benchmark": []}
    for command, required in base.items():
        assert parser.parse_args([command, *required]).threads == "auto", command
        assert parser.parse_args([command, *required, "--threads", "3"]).threads == 3, command
        with pytest.raises(SystemExit):
            parser.parse_args([command, *required, "--threads", "0"])


def _stats(median, p90, lo, hi, build=0.1, iters=10):
    return {"median_ms": median, "p90_ms": p90, "min_ms": lo, "mean_ms": median, "iters": iters,
            "spread": round(hi / lo, 2), "build_s": build}


def test_benchmark_warns_on_contention_and_costly_builds():
    quiet = _stats(40.0, 42.0, 39.0, 44.0)
    assert warnings_for({"fused": quiet, "x": {"skipped": "no GPU"}}) == []
    disturbed = _stats(2462.0, 2600.0, 45.0, 2700.0)  # the eager: median 2,462 ms, minimum 45 ms
    noisy_tail = _stats(40.0, 90.0, 39.0, 95.0)
    w = warnings_for({"eager": disturbed, "fused": noisy_tail, "fast": quiet})
    assert len(w) == 2 and w[0].startswith("eager: calls varied widely") and w[1].startswith("fused:")
    w = warnings_for({"compile": _stats(40.0, 42.0, 39.0, 44.0, build=93.0)})
    few_calls, short_build = _stats(40.0, 90.0, 39.0, 95.0, iters=3), _stats(40.0, 42.0, 39.0, 44.0, 4.0)
    assert warnings_for({"few": few_calls, "jit": short_build}) == []
    assert w == ["compile: building took 93.0 s, more than its 10 timed calls (0.4 s): it pays off only for a "
                 "long-running process"]


def test_library_chatter_is_held_back_unless_the_block_fails(capsys):
    import logging
    import sys

    from asymformer.deploy.common import quiet_libraries

    with quiet_libraries():
        logging.warning("Please consider to run pre-processing before quantization.")
        print("Statistics collection 100%", file=sys.stderr)
        print("progress", flush=True)
    assert capsys.readouterr() == ("", "")
    with pytest.raises(RuntimeError), quiet_libraries():
        print("what led to it", file=sys.stderr)
        raise RuntimeError("failed")
    assert "what led to it" in capsys.readouterr().err


def test_compare_table_flags_contended_rows():
    from asymformer.deploy.benchmark import compare

    quiet, disturbed = _stats(40.0, 42.0, 39.0, 44.0), _stats(80.0, 200.0, 39.0, 300.0)
    for r in (quiet, disturbed):
        r.update(fps=1000 / r["median_ms"], max_abs_diff=0.0)
    lines = compare({"results": {"eager": disturbed, "fused": quiet}})
    rows = {line.split()[0]: line for line in lines[2:4]}  # after the model line and the column header
    assert rows["eager"].endswith("contended")
    assert not rows["fused"].endswith("contended") and "do not quote these ratios" in lines[-1]
    assert "contended" not in "".join(compare({"results": {"fused": quiet}}))
