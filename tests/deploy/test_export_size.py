"""export and evaluate pick the size by one rule: the checkpoint's validated size, else 480x640."""

import pytest

from asymformer.cli import main
from asymformer.models.info import input_size

onnx = pytest.importorskip("onnx")


def test_input_size_rule(small_model):
    info = small_model.info.replace(eval_size=(96, 128))
    assert input_size(info) == ((96, 128), "checkpoint (validated at this size)")
    assert input_size(info, (64, 64)) == ((64, 64), "argument")
    assert input_size(small_model.info.replace(eval_size=None)) == ((480, 640), "default (official protocol)")
    assert input_size(None)[0] == (480, 640)


def test_export_uses_the_checkpoints_size(small_model, tmp_path, capsys):
    import asymformer

    ckpt = tmp_path / "m.safetensors"
    asymformer.save_model(small_model, ckpt, info=small_model.info.replace(eval_size=(64, 96)))
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--no-check", "--threads", "1"]) == 0
    shape = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert shape == [1, 3, 64, 96]
    captured = capsys.readouterr()
    assert "export size 64x96: checkpoint (validated at this size)" in captured.err
    assert "1x3x64x96" in captured.out or "64x96" in captured.out
