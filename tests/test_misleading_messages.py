"""Inputs that ended in a traceback or a misleading message: each is now one line naming what is
wrong and the fix (CLI: exit 2), or a warning before minutes of work."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import asymformer
from asymformer.cli import main

TINY = dict(rgb_dims=(8, 8, 16, 16), rgb_depths=(1, 1, 1, 1), depth_dims=(8, 8, 16, 16), depth_heads=(1, 1, 2, 2),
            depth_depths=(1, 1, 1, 1), decoder_dim=8)


def _tiny(num_classes=4):
    torch.manual_seed(0)
    return asymformer.create_model("asymformer_b0_a", num_classes=num_classes, **TINY).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    asymformer.save_model(_tiny(), path)
    return path


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    root = tmp_path_factory.mktemp("frame")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "a_rgb.png")
    Image.fromarray(rng.integers(500, 4000, (40, 48), dtype=np.uint16)).save(root / "a_depth.png")
    return root


def _line(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(f"asymformer {command}: error: ") or lines[-1].startswith("asymformer: "), err
    return lines[-1]


def _predict(ckpt, frame, tmp_path, *extra, checkpoint=None):
    return main(["predict", "--checkpoint", str(checkpoint or ckpt), "--rgb", str(frame / "a_rgb.png"), "--depth",
                 str(frame / "a_depth.png"), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress",
                 *extra])


def test_a_folder_as_checkpoint_is_named_a_folder_with_its_model_files(ckpt, frame, tmp_path, capsys):
    from asymformer.deploy import Segmenter
    from asymformer.models.finetune import read_any_weights

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("best.safetensors", "last.safetensors"):
        (run / "checkpoints" / name).write_bytes(ckpt.read_bytes())
    assert _predict(ckpt, frame, tmp_path, checkpoint=run) == 2
    line = _line(capsys, "predict")
    assert f"{run} is a folder, not a model file" in line and "checkpoints/best.safetensors" in line
    with pytest.raises(IsADirectoryError, match="is a folder.*last.safetensors"):
        Segmenter(run, device="cpu")
    with pytest.raises(IsADirectoryError, match="--init-from .* is a folder"):
        read_any_weights(run)
    with pytest.raises(IsADirectoryError, match="is a folder, not a model file; pass our .safetensors"):
        asymformer.load_model(tmp_path)  # a folder without model files


def test_a_pickled_module_or_an_onnx_file_is_named_for_what_it_is(ckpt, frame, tmp_path, capsys):
    torch.save(_tiny(), tmp_path / "whole.pth")
    with pytest.raises(ValueError, match=r"whole pickled model \(asymformer.*AsymFormer.*model.load_state_dict"):
        asymformer.load_model(tmp_path / "whole.pth")
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)), tmp_path / "seq.pt")
    with pytest.raises(ValueError, match=r"whole pickled model \(torch.nn.modules.container.Sequential"):
        asymformer.load_model(tmp_path / "seq.pt")
    onnx_bytes = b"\x08\x08\x12\x07pytorch\x1a\x062.13.0" + b"\x00" * 64
    (tmp_path / "model.bin").write_bytes(onnx_bytes)  # the content tells, whatever the name
    for path in (tmp_path / "model.bin",):
        assert _predict(ckpt, frame, tmp_path, checkpoint=path) == 2
        line = _line(capsys, "predict")
        assert "is an ONNX model" in line and "ONNX Runtime" in line and "damaged" not in line


def test_panel_with_labels_of_another_size_names_both_sizes(ckpt, frame, tmp_path, capsys):
    Image.fromarray(np.ones((20, 24), np.uint8)).save(tmp_path / "gt.png")
    assert _predict(ckpt, frame, tmp_path, "--panel", "--labels", str(tmp_path / "gt.png")) == 2
    assert "gt.png is 20×24 but" in _line(capsys, "predict") and not (tmp_path / "out" / "a.png").exists()


def test_export_refuses_an_opset_it_cannot_honour(ckpt, tmp_path, capsys):
    for opset in ("9", "13", "30"):
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--size", "32x32",
                     "--opset", opset, "--no-check"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "opsets 14 to 23" in err  # no IR dump
    assert not (tmp_path / "m.onnx").exists()


def test_classes_on_a_custom_dataset_is_refused(ckpt, tmp_path, capsys):
    from asymformer.data import open_dataset, write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "d", 1, 1, 32, 32, progress=False)
    with pytest.raises(ValueError, match=r"classes=13 \(--classes\): .* has 10 classes.*drop it"):
        open_dataset(tmp_path / "d", "train", classes=13)
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path / "d"), "--classes", "13",
                 "--workers", "0", "--no-progress"]) == 2
    assert "--classes" in _line(capsys, "evaluate")


def test_benchmark_model_conflict_and_tables_name_their_model(ckpt, capsys):
    from asymformer.deploy.benchmark import compare

    assert main(["benchmark", "--checkpoint", str(ckpt), "--model", "asymformer_b0_t", "--iters", "1"]) == 2
    assert "is asymformer_b0_a but --model says asymformer_b0_t" in _line(capsys, "benchmark")
    assert main(["benchmark", "--checkpoint", str(ckpt), "--size", "32x32", "--backends", "eager", "--iters", "1",
                 "--warmup", "0", "--compare", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "asymformer_b0_a at 32x32, batch 1"
    report = {"config": {"model": "asymformer_b0_n", "height": 48, "width": 64, "batch": 2},
              "results": {"eager": {"skipped": "x"}}}
    assert compare(report)[0] == "asymformer_b0_n at 48x64, batch 2"


def test_one_folder_for_rgb_and_depth_says_to_use_role_word_globs(ckpt, frame, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(ckpt), "--rgb", str(frame), "--depth", str(frame), "--out",
                 str(tmp_path / "o"), "--device", "cpu"]) == 2
    line = _line(capsys, "predict")
    assert "are the same folder" in line and "*_rgb.png" in line and "*_depth.png" in line


def test_a_huge_frame_without_size_is_warned_with_an_estimate(ckpt):
    from asymformer.deploy import Segmenter
    from asymformer.deploy.predict import _warn_large_frame

    with pytest.warns(UserWarning, match=r"5000x5000, 81x the pixels.*GMACs, roughly 81x the time.*--size 480x640"):
        _warn_large_frame(Segmenter(ckpt, device="cpu"), (5000, 5000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_large_frame(Segmenter(ckpt, device="cpu", size=(64, 64)), (5000, 5000))  # --size given: no word
        _warn_large_frame(Segmenter(ckpt, device="cpu"), (480, 640))


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes="10"), r"num_classes must be an integer >= 1, got '10' \(str\)"),
    (dict(num_classes=10.0), r"num_classes must be an integer >= 1, got 10.0 \(float\)"),
    (dict(num_classes=True), "num_classes must be an integer"),
    (dict(num_classes=3, decoder_dims=8), "unknown argument decoder_dims"),
    (dict(num_classes=3, rgb_dims=(8, 8, 16)), "rgb_dims must be 4 integers"),
    (dict(num_classes=3, decoder_dim="8"), "decoder_dim must be an integer"),
    (dict(num_classes=3, rgb_drop_path=1.5), r"rgb_drop_path must be a rate in \[0, 1\)"),
])
def test_create_model_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        asymformer.create_model("asymformer_b0_a", **kwargs)
    with pytest.raises(ValueError, match="unknown model"):
        asymformer.create_model(3)


def test_depth_with_three_channels_and_tiny_frames_say_the_fix(ckpt, frame, tmp_path, capsys):
    from asymformer.deploy import Segmenter

    seg = Segmenter(ckpt, device="cpu")
    rgb = np.zeros((40, 48, 3), np.uint8)
    with pytest.raises(ValueError, match="depth has 3 channels .*depth must be one channel"):
        seg(rgb, np.ones((40, 48, 3), np.float32))
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "p_rgb.png")
    Image.fromarray(np.full((1, 1), 1000, np.uint16)).save(tmp_path / "p_depth.png")
    assert main(["predict", "--checkpoint", str(ckpt), "--rgb", str(tmp_path / "p_rgb.png"), "--depth",
                 str(tmp_path / "p_depth.png"), "--out", str(tmp_path / "o"), "--device", "cpu", "--no-progress"]) == 2
    assert "--size HxW" in _line(capsys, "predict")


def test_an_unquoted_glob_is_named(ckpt, frame, tmp_path, capsys):
    files = [str(frame / "a_rgb.png"), str(frame / "a_depth.png"), str(tmp_path / "b_rgb.png")]
    with pytest.raises(SystemExit) as info:
        main(["predict", "--checkpoint", str(ckpt), "--rgb", *files, "--depth", "x", "--out", "o"])
    assert info.value.code == 2
    line = _line(capsys, "predict")
    assert "2 file names left over: the shell expanded an unquoted glob" in line and "quote" in line


def test_a_crop_far_larger_than_the_images_is_warned():
    from asymformer.engine import TrainConfig
    from asymformer.engine.summary import warnings_for

    config = TrainConfig(crop_size=(480, 640), base_size=(96, 128), scale_range=(1.0, 1.0))
    found = warnings_for(config, total=10, warmup=0, size=(96, 128), synthetic=False)
    assert any("96% of each training crop is padding" in w for w in found)
    assert not warnings_for(TrainConfig(crop_size=(96, 128), base_size=(96, 128)), total=10, warmup=0,
                            size=(96, 128), synthetic=False)


def test_prepare_synthetic_refuses_sizes_training_refuses(tmp_path, capsys):
    assert main(["prepare", "synthetic", "--out", str(tmp_path / "s"), "--train-frames", "1", "--size", "8x8"]) == 2
    assert "--size must be at least 32x32" in _line(capsys, "prepare")
    assert not (tmp_path / "s").exists()


def test_segmenter_arguments_and_frames_checked_at_the_boundary(ckpt):
    from asymformer.deploy import Segmenter

    for size in ((64.5, 64), ("64", "64"), "480x640", (64, 64, 3), (16, 64)):
        with pytest.raises(ValueError, match="size must be \\(H, W\\), two whole numbers >= 32"):
            Segmenter(ckpt, device="cpu", size=size)
    seg = Segmenter(ckpt, device="cpu")
    rgb, depth = np.zeros((40, 48, 3), np.uint8), np.full((40, 48), 1000, np.uint16)
    with pytest.raises(ValueError, match="frames of a list must share one shape"):
        seg([rgb, rgb[:32]], [depth, depth[:32]])
    with pytest.raises(ValueError, match="depth holds complex64 values"):
        seg(rgb, depth.astype(np.complex64))
    with pytest.raises(ValueError, match=r"drop the alpha channel with rgb\[\.\.\., :3\]"):
        seg(np.zeros((40, 48, 4), np.uint8), depth)
