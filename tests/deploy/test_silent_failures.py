"""Inputs that used to give a silently wrong answer: each is now a correct result or one clear refusal.

Float colour in 0..1 (was rounded to a black frame), a wrong --depth-unit (depths of kilometres
accepted), mostly invalid depth (the model silently ran RGB-only), two cameras' frames sharing
names in one --out (camB overwrote camA), two writers on one --out.
"""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from asymformer.cli import main
from asymformer.data.io import read_depth, read_rgb
from asymformer.deploy import Segmenter
from asymformer.deploy.predict import pair_files, predict_files


def _err(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"asymformer {command}: error: ") and "Traceback" not in "\n".join(err), err
    return err[-1]


@pytest.fixture(scope="module")
def seg(small_model):
    return Segmenter(small_model, device="cpu")


def test_float_colour_follows_one_rule_in_files_arrays_tensors_and_the_cli(seg, make_frame, tmp_path, checkpoint,
                                                                            capsys):
    import torch

    rgb, depth = make_frame(40, 48)
    unit = seg(rgb, depth).labels
    as_01 = rgb.astype(np.float32) / 255
    assert np.array_equal(seg(as_01, depth).labels, unit)  # 0..1 floats: scaled, not rounded to black
    assert np.array_equal(seg(rgb.astype(np.float64), depth).labels, unit)  # 0..255 floats: rounded
    t = seg(torch.from_numpy(as_01).permute(2, 0, 1).contiguous(), torch.from_numpy(depth.astype(np.int32)))
    assert np.array_equal(t.labels.numpy(), unit)
    np.save(tmp_path / "f01.npy", as_01)
    assert np.array_equal(read_rgb(tmp_path / "f01.npy"), rgb)
    for bad, match in ((as_01 * 300, "up to"), (as_01 - 0.5, "negative"), (np.full_like(as_01, np.nan), "NaN"),
                       (rgb.astype(np.uint16) * 257, "16-bit")):
        with pytest.raises(ValueError, match=match):
            seg(bad, depth)
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(ValueError, match=match):
            read_rgb(tmp_path / "bad.npy")
    # the CLI reads the 0..1 file and writes the same labels as for the uint8 frame
    Image.fromarray(depth).save(tmp_path / "d.png")
    Image.fromarray(rgb).save(tmp_path / "u.png")
    for name in ("u.png", "f01.npy"):
        assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / name), "--depth",
                     str(tmp_path / "d.png"), "--out", str(tmp_path / name[0]), "--device", "cpu", "--save-labels",
                     "--no-progress"]) == 0
    a, b = (np.asarray(Image.open(tmp_path / d / f"{s}_labels.png")) for d, s in (("u", "u"), ("f", "f01")))
    assert np.array_equal(a, b) and len(np.unique(a)) > 1


def test_depth_unit_is_checked_for_plausibility_whatever_its_source(seg, make_frame, tmp_path, checkpoint, capsys):
    rgb, depth = make_frame(40, 48)  # uint16 millimetres up to 6 m
    with pytest.raises(ValueError, match=r"depth reaches 5\d\d\d m with depth_unit 1 \(given\).*look like "
                                         r"millimetres: pass --depth-unit 0\.001"):
        seg(rgb, depth, depth_unit=1)
    with pytest.raises(ValueError, match="look like millimetres"):
        Segmenter(seg.model, device="cpu", depth_unit=1.0)(rgb, depth)
    metres = depth.astype(np.float32) / 1000
    with pytest.raises(ValueError, match=r"closer than any depth camera sees.*look like metres: pass --depth-unit 1"):
        seg(rgb, metres, depth_unit=0.001)  # metres read as millimetres: the whole room within 6 mm
    np.save(tmp_path / "mm.npy", depth)
    with pytest.raises(ValueError, match="mm.npy: depth reaches .* look like millimetres"):
        read_depth(tmp_path / "mm.npy", depth_unit=1.0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(depth).save(tmp_path / "depth.png")
    assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb.png"), "--depth",
                 str(tmp_path / "depth.png"), "--out", str(tmp_path / "o"), "--depth-unit", "1", "--device", "cpu",
                 "--no-progress"]) == 2
    assert "--depth-unit 0.001" in _err(capsys, "predict")
    assert not (tmp_path / "o" / "rgb.png").exists()


@pytest.mark.parametrize("kind, cause", [("zero", "zero"), ("nan", "NaN"), ("negative", "negative .a sign-flipped")])
def test_mostly_invalid_depth_is_warned_once_and_frames_without_depth_are_named(small_model, make_frame, tmp_path,
                                                                                 kind, cause):
    rgb, depth = make_frame(40, 48)
    metres = depth.astype(np.float32) / 1000
    bad = {"zero": np.zeros_like(metres), "nan": np.full_like(metres, np.nan), "negative": -metres}[kind]
    fresh = Segmenter(small_model, device="cpu")
    with pytest.warns(UserWarning, match=rf"100% of the depth pixels are invalid, mostly {cause}"):
        fresh(rgb, bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh(rgb, bad)  # once per Segmenter, not per frame
    for d in ("rgb", "depth"):
        (tmp_path / d).mkdir()
    for name, dm in (("a", metres), ("b", bad), ("c", bad)):
        Image.fromarray(rgb).save(tmp_path / "rgb" / f"{name}.png")
        np.save(tmp_path / "depth" / f"{name}.npy", dm)
    with pytest.warns(UserWarning, match=rf"b.npy: 100% of the depth pixels are invalid, mostly {cause}") as w:
        s = predict_files(Segmenter(small_model, device="cpu"), pair_files(tmp_path / "rgb", tmp_path / "depth"),
                          tmp_path / "out", progress=False)
    assert len([x for x in w if "invalid" in str(x.message)]) == 1  # one warning for the run
    assert s["frames_without_depth"] == ["b", "c"]
    assert [f["valid_depth"] for f in s["per_frame"]] == [0.8, 0.0, 0.0]  # make_frame zeroes the top fifth
    assert json.loads((tmp_path / "out" / "predict.json").read_text())["frames_without_depth"] == ["b", "c"]


def _camera(root, cam, make_frame, n=2):
    root.mkdir(exist_ok=True)
    for i in range(1, n + 1):
        rgb, depth = make_frame(36, 40, seed=i + (10 if cam == "camB" else 0))
        Image.fromarray(rgb).save(root / f"{cam}_{i:03d}_rgb.png")
        Image.fromarray(depth).save(root / f"{cam}_{i:03d}_depth.png")


def test_two_cameras_into_one_out_never_share_a_file(checkpoint, make_frame, tmp_path, capsys):
    cams, out = tmp_path / "cams", tmp_path / "out"
    _camera(cams, "camA", make_frame)
    _camera(cams, "camB", make_frame)

    def run(cam, *extra):
        return main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(cams / f"{cam}_*_rgb.png"), "--depth",
                     str(cams / f"{cam}_*_depth.png"), "--out", str(out), "--device", "cpu", "--no-progress",
                     *extra])

    assert run("camA") == 0
    first = (out / "camA_001.png").read_bytes()
    assert run("camB") == 0
    names = sorted(p.name for p in out.glob("cam*.png"))
    assert names == ["camA_001.png", "camA_002.png", "camB_001.png", "camB_002.png"]
    assert (out / "camA_001.png").read_bytes() == first
    summary = json.loads((out / "predict.json").read_text())  # describes every file in the folder
    assert [f["name"] for f in summary["per_frame"]] == ["camB_001", "camB_002"]
    assert [f["name"] for f in summary["earlier_runs"][0]["per_frame"]] == ["camA_001", "camA_002"]
    # the same run again: its outputs are there already; refused without --overwrite
    assert run("camA") == 2
    assert "already holds 2 of this run's output files" in _err(capsys, "predict")
    assert (out / "camA_001.png").read_bytes() == first
    assert run("camA", "--overwrite") == 0
    summary = json.loads((out / "predict.json").read_text())
    assert [f["name"] for f in summary["per_frame"]] == ["camA_001", "camA_002"]
    assert [f["name"] for r in summary["earlier_runs"] for f in r["per_frame"]] == ["camB_001", "camB_002"]


def test_a_second_writer_on_one_out_is_refused(small_model, make_frame, tmp_path):
    from asymformer.files import DirLock

    _camera(tmp_path / "cams", "camA", make_frame, n=1)
    pairs = pair_files(tmp_path / "cams" / "*_rgb.png", tmp_path / "cams" / "*_depth.png")
    with DirLock(tmp_path / "out", ".predict.lock"):  # another process's run in progress
        with pytest.raises(ValueError, match=r"another asymformer predict \(pid \d+\) is writing to"):
            predict_files(Segmenter(small_model, device="cpu"), pairs, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "predict.json").exists()


def test_the_cli_prints_the_warning_as_one_line_and_names_frames_without_depth(checkpoint, make_frame, tmp_path,
                                                                                capsys):
    rgb, _ = make_frame(36, 40)
    Image.fromarray(rgb).save(tmp_path / "f_rgb.png")
    np.save(tmp_path / "f_depth.npy", np.full((36, 40), np.nan, np.float32))
    assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "f_rgb.png"), "--depth",
                 str(tmp_path / "f_depth.npy"), "--out", str(tmp_path / "o"), "--device", "cpu", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"asymformer predict: warning: {tmp_path / 'f_depth.npy'}: 100% of the depth pixels are invalid, mostly "
        "NaN/inf (the driver's invalid marker); such frames are segmented from colour alone and are less accurate "
        "(warned once; predict.json lists frames without any depth)"]
    assert "1 frames had no valid depth at all (f): segmented from colour alone" in captured.out


def test_an_output_never_replaces_an_input(small_model, make_frame, tmp_path):
    rgb, depth = make_frame(36, 40)
    Image.fromarray(rgb).save(tmp_path / "a.png")  # an rgb file named like the output it would get
    Image.fromarray(depth).save(tmp_path / "a_depth.png")
    pairs = pair_files(tmp_path / "a.png", tmp_path / "a_depth.png")
    before = (tmp_path / "a.png").read_bytes()
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="the output a.png would replace the input file"):
            predict_files(Segmenter(small_model, device="cpu"), pairs, tmp_path, progress=False, overwrite=overwrite)
    assert (tmp_path / "a.png").read_bytes() == before
