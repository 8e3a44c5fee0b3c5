"""Bad input found by trying it as a new user would: one line naming the argument or file, and the fix."""

import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import asymformer
from asymformer.cli import main


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory):
    model = asymformer.create_model("asymformer_b0_a", num_classes=4)
    with torch.no_grad():
        model.Decoder.linear_pred.weight[0, 0] = float("nan")
        model.Decoder.linear_fuse[0].bias[1] = float("inf")
    path = tmp_path_factory.mktemp("nan") / "diverged.safetensors"
    asymformer.save_model(model, path, class_names=list("abcd"))
    return path


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"asymformer {command}: error: "), err
    return err[-1]


def test_nan_weights_are_refused_by_load_model_segmenter_predict_and_evaluate(nan_checkpoint, tmp_path, capsys):
    from asymformer.deploy.segmenter import Segmenter

    with pytest.raises(ValueError, match=r"diverged\.safetensors holds NaN/inf weights in 2 tensor") as info:
        asymformer.load_model(nan_checkpoint)
    assert "Decoder.linear_pred.weight (1 values)" in str(info.value)
    with pytest.raises(ValueError, match="NaN/inf"):
        Segmenter(str(nan_checkpoint), device="cpu")
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "rgb" / "a.png")
    Image.fromarray(np.full((32, 32), 1000, np.uint16)).save(tmp_path / "depth" / "a.png")
    assert main(["predict", "--checkpoint", str(nan_checkpoint), "--rgb", str(tmp_path / "rgb"), "--depth",
                 str(tmp_path / "depth"), "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 2
    assert str(nan_checkpoint) in _one_line_error(capsys, "predict")
    assert not (tmp_path / "pred" / "predict.json").exists()
    assert main(["evaluate", "--checkpoint", str(nan_checkpoint), "--data", "synthetic:1:1", "--size", "64x64",
                 "--workers", "0"]) == 2
    assert "NaN/inf" in _one_line_error(capsys, "evaluate")
    # The official .pth route is checked too.
    from asymformer.models.serialization import read_safetensors

    sd = read_safetensors(nan_checkpoint)[0]
    torch.save({"state_dict": sd}, tmp_path / "diverged.pth")
    with pytest.raises(ValueError, match=r"diverged\.pth holds NaN/inf"):
        asymformer.load_model(tmp_path / "diverged.pth")


def _broken_safetensors(path):
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_off'  # cut mid-header
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


@pytest.mark.parametrize("case", ["empty_pth", "garbage_header", "cut_header", "huge_length"])
def test_damaged_model_files_name_the_file(tmp_path, capsys, case):
    if case == "empty_pth":
        path = tmp_path / "empty.pth"
        path.write_bytes(b"")
        expect = "is empty (0 bytes)"
    elif case == "garbage_header":
        path = tmp_path / "g.safetensors"
        path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}")
        expect = "broken safetensors header"
    elif case == "cut_header":
        path = _broken_safetensors(tmp_path / "cut.safetensors")
        expect = "broken safetensors header"
    else:
        path = tmp_path / "huge.safetensors"
        path.write_bytes(b"xxxxxxxx{" + b" " * 30)
        expect = "broken safetensors header"
    for command in (["evaluate", "--data", "synthetic:1:1"], ["export", "--out", str(tmp_path / "m.onnx")]):
        assert main([command[0], "--checkpoint", str(path), *command[1:]]) == 2
        line = _one_line_error(capsys, command[0])
        assert str(path) in line and expect in line


def test_cli_argument_mistakes_are_one_line(tmp_path, capsys):
    cases = [
        (["info", "--size", "0x640"], "info", "--size: sizes must be positive, got '0x640'"),
        (["benchmark", "--threads", "-1", "--iters", "1"], "benchmark", "--threads: must be >= 1"),
        (["benchmark", "--out", str(tmp_path), "--iters", "1"], "benchmark", "is a folder; give a file name"),
        (["train", "--data", "synthetic:4:2", "--out", str(tmp_path / "r"), "--device", "gpu"], "train",
         "expected auto, cpu, cuda or cuda:N"),
        (["evaluate", "--checkpoint", __file__, "--data", "synthetic:1:1", "--scales", "100"], "evaluate",
         "--scales: expected factors between 0.25 and 4.0"),
        (["evaluate", "--checkpoint", __file__, "--data", "synthetic:1:1", "--out", __file__], "evaluate",
         "is an existing file; give a folder"),
        (["train", "--data", "synthetic:4:2", "--out", __file__], "train", "is an existing file; give a folder"),
        (["train", "--data", "synthetic:4:2", "--out", str(tmp_path / "s"), "--stop-after", "-1"], "train",
         "--stop-after must be >= 0"),
        (["train", "--data", "synthetic:4:2", "--out", str(tmp_path / "s"), "--lr", "nan"], "train",
         "--lr must be a positive number"),
        (["evaluate", "--checkpoint", __file__, "--data", "synthetic:1:1", "--workers", "-1"], "evaluate",
         "--workers: must be >= 0"),
        (["predict", "--checkpoint", __file__, "--rgb", ".", "--depth", ".", "--out", str(tmp_path / "p"),
          "--alpha", "7"], "predict", "--alpha must be between 0 and 1"),
    ]
    for argv, command, expect in cases:
        assert _exit_code(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"asymformer {command}: error: ") and expect in err[-1], (argv, err)


def _exit_code(argv) -> int:
    """main()'s return value, or the code argparse exits with for a malformed argument."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_segmenter_rejects_an_unknown_device(tmp_path):
    from asymformer.deploy.segmenter import Segmenter

    with pytest.raises(ValueError, match=r"gpu.*expected auto, cpu, cuda or cuda:N"):
        Segmenter(asymformer.create_model("asymformer_b0_a", num_classes=4), device="gpu")


def test_empty_mat_files_name_the_flag(tmp_path, capsys):
    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    assert main(["prepare", "nyuv2", "--mat", str(empty), "--splits", str(empty), "--mapping", str(empty),
                 "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys, "prepare")
    assert str(empty) in line and ("--splits" in line or "--mat" in line)
    assert main(["prepare", "sunrgbd", "--root", str(tmp_path), "--meta", str(empty), "--seg", str(empty),
                 "--split", str(empty), "--out", str(tmp_path / "o2")]) == 2
    assert str(empty) in _one_line_error(capsys, "prepare")


def test_results_json_refuses_nan(tmp_path):
    from asymformer.files import write_json

    with pytest.raises(ValueError, match=r"non-finite number at 'metrics.per_class.1'"):
        write_json(tmp_path / "r.json", {"metrics": {"per_class": [0.5, float("nan")]}})
    assert not (tmp_path / "r.json").exists()
    write_json(tmp_path / "r.json", {"miou": None})
    assert json.loads((tmp_path / "r.json").read_text()) == {"miou": None}
