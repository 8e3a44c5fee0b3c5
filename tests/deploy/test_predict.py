import json

import numpy as np
import pytest
from PIL import Image

from asymformer.cli import main
from asymformer.deploy.predict import expand, pair_files


def _write_frames(root, make_frame, names, size=(40, 56)):
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "labels").mkdir()
    for i, name in enumerate(names):
        rgb, depth = make_frame(*size, seed=i)
        Image.fromarray(rgb).save(root / "rgb" / f"{name}.jpg")
        Image.fromarray(depth).save(root / "depth" / f"{name}.png")
        Image.fromarray(np.full(size, i + 1, np.uint8)).save(root / "labels" / f"{name}.png")


def test_predict_cli_writes_every_output(checkpoint, make_frame, tmp_path, capsys):
    _write_frames(tmp_path, make_frame, ["a", "b"])
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb"),
               "--depth", str(tmp_path / "depth" / "*.png"), "--labels", str(tmp_path / "labels"),
               "--out", str(out), "--overlay", "--panel", "--attention", "--save-labels", "--device", "cpu"])
    assert rc == 0
    assert "FPS" in capsys.readouterr().out
    for name in ("a", "b"):
        color = np.asarray(Image.open(out / f"{name}.png"))
        labels = np.asarray(Image.open(out / f"{name}_labels.png"))
        assert color.shape == (40, 56, 3) and labels.shape == (40, 56) and labels.max() < 5
        assert np.asarray(Image.open(out / f"{name}_overlay.png")).shape == (40, 56, 3)
        panel = np.asarray(Image.open(out / f"{name}_panel.png"))
        assert panel.shape[1] == 4 * 56 + 3 * 4  # rgb | depth | prediction | ground truth
        att = np.asarray(Image.open(out / f"{name}_attention.png"))
        assert att.shape[1] == 4 * 56 + 3 * 4  # rgb | stage 2 | stage 3 | stage 4
    summary = json.loads((out / "predict.json").read_text())
    assert summary["frames"] == 2 and summary["segmenter_fps"] > 0 and "model_fps" not in summary
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries


def test_pairing_errors(make_frame, tmp_path):
    _write_frames(tmp_path, make_frame, ["a", "b"])
    (tmp_path / "depth" / "b.png").rename(tmp_path / "depth" / "c.png")
    with pytest.raises(ValueError, match="unpaired names.*b, c"):
        pair_files(tmp_path / "rgb", tmp_path / "depth")
    (tmp_path / "depth" / "c.png").unlink()
    with pytest.raises(ValueError, match="2 rgb files but 1 depth files"):
        pair_files(tmp_path / "rgb", tmp_path / "depth")
    with pytest.raises(FileNotFoundError, match="matches no files"):
        pair_files(str(tmp_path / "rgb" / "*.bmp"), tmp_path / "depth")


def test_a_folder_gives_the_files_its_reader_reads(tmp_path):
    """One mixed folder for both sides: rgb takes the JPEG, depth (JPEG would alter values) does not."""
    for name in ("a_rgb.jpg", "a_depth.png", "b_rgb.tif", "b_depth.npy", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [k for k, _ in expand(tmp_path, "rgb")] == ["a_depth", "a_rgb", "b_depth", "b_rgb"]
    assert [k for k, _ in expand(tmp_path, "depth")] == ["a_depth", "b_depth", "b_rgb"]
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"--depth directory .*only has no \.png/\.tif"):
        expand(tmp_path / "only", "depth")


def test_predict_cli_unreadable_image_is_one_line(checkpoint, make_frame, tmp_path, capsys):
    _write_frames(tmp_path, make_frame, ["a"])
    (tmp_path / "rgb" / "a.jpg").write_bytes(b"not an image")
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb" / "a.jpg"),
               "--depth", str(tmp_path / "depth" / "a.png"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # earlier lines are the progress bar
    assert rc == 2 and "Traceback" not in err and "cannot read RGB file" in last and "a.jpg" in last


def test_readme_glob_pairs_a_rgb_with_a_depth(checkpoint, make_frame, tmp_path, monkeypatch):
    """The README command, as written: --rgb "frames/*_rgb.png" --depth "frames/*_depth.png"."""
    (tmp_path / "frames").mkdir()
    for i, name in enumerate(["a", "b"]):
        rgb, depth = make_frame(40, 56, seed=i)
        Image.fromarray(rgb).save(tmp_path / "frames" / f"{name}_rgb.png")
        Image.fromarray(depth).save(tmp_path / "frames" / f"{name}_depth.png")
    monkeypatch.chdir(tmp_path)
    pairs = pair_files("frames/*_rgb.png", "frames/*_depth.png")
    assert [(n, r.name, d.name) for n, r, d, _ in pairs] == [("a", "a_rgb.png", "a_depth.png"),
                                                             ("b", "b_rgb.png", "b_depth.png")]
    assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", "frames/*_rgb.png", "--depth",
                 "frames/*_depth.png", "--out", "predictions", "--device", "cpu", "--save-labels"]) == 0
    assert sorted(p.name for p in (tmp_path / "predictions").glob("*_labels.png")) == ["a_labels.png",
                                                                                         "b_labels.png"]


def _run_labels(checkpoint, rgb_path, depth_path, out, *extra):
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(rgb_path), "--depth", str(depth_path),
               "--out", str(out), "--device", "cpu", "--save-labels", *extra])
    assert rc == 0
    return np.asarray(Image.open(next(out.glob("*_labels.png"))))


def test_float_metre_depth_matches_uint16_mm(checkpoint, make_frame, tmp_path, capsys):
    rgb, mm = make_frame(40, 56, seed=3)
    Image.fromarray(rgb).save(tmp_path / "f.png")
    Image.fromarray(mm).save(tmp_path / "d_mm.png")
    metres = mm.astype(np.float32) / 1000
    np.save(tmp_path / "d.npy", metres)
    np.savez(tmp_path / "d.npz", depth=metres)
    Image.fromarray(metres).save(tmp_path / "d.tiff")  # 32-bit float TIFF (mode F)
    ref = _run_labels(checkpoint, tmp_path / "f.png", tmp_path / "d_mm.png", tmp_path / "o_png")
    for name in ("d.npy", "d.npz", "d.tiff"):
        np.testing.assert_array_equal(_run_labels(checkpoint, tmp_path / "f.png", tmp_path / name,
                                                  tmp_path / f"o_{name}"), ref)
    # float millimetres are refused (not silently 1000x), and the flag fixes it
    np.save(tmp_path / "mm.npy", mm.astype(np.float32))
    assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "f.png"), "--depth",
                 str(tmp_path / "mm.npy"), "--out", str(tmp_path / "o_bad"), "--device", "cpu"]) == 2
    assert "--depth-unit 0.001" in capsys.readouterr().err
    np.testing.assert_array_equal(_run_labels(checkpoint, tmp_path / "f.png", tmp_path / "mm.npy",
                                              tmp_path / "o_mm", "--depth-unit", "0.001"), ref)


def test_8bit_depth_and_bad_unit_refused(checkpoint, make_frame, tmp_path, capsys):
    rgb, mm = make_frame(40, 56)
    Image.fromarray(rgb).save(tmp_path / "f.png")
    Image.fromarray((mm // 40).astype(np.uint8)).save(tmp_path / "d8.png")
    base = ["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "f.png"), "--depth",
            str(tmp_path / "d8.png"), "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err
    assert "d8.png is 8-bit depth: its unit is unknown" in err and "--depth-unit" in err
    assert main([*base, "--out", str(tmp_path / "o2"), "--depth-unit", "0.04"]) == 0
    for bad in ("0", "-0.001"):
        assert main([*base, "--out", str(tmp_path / "o3"), "--depth-unit", bad]) == 2
        assert "--depth-unit must be a positive number" in capsys.readouterr().err


def test_api_agrees_with_cli_on_units(small_model, make_frame):
    from asymformer.data.io import resolve_depth_unit
    from asymformer.deploy import Segmenter

    seg = Segmenter(small_model, device="cpu")
    rgb, mm = make_frame(40, 56)
    a = seg(rgb, mm).labels                                # uint16: millimetres
    b = seg(rgb, mm.astype(np.float32) / 1000).labels      # float: metres
    c = seg(rgb, (mm // 40).astype(np.uint8), depth_unit=0.04).labels
    np.testing.assert_array_equal(a, b)
    assert c.shape == a.shape
    with pytest.raises(ValueError, match="8-bit depth"):
        seg(rgb, (mm // 40).astype(np.uint8))
    with pytest.raises(ValueError, match="8-bit depth"):
        resolve_depth_unit(np.dtype(np.uint8), None, "x")
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="depth_unit must be a positive number"):
            Segmenter(small_model, device="cpu", depth_unit=bad)


def test_predict_and_evaluate_give_identical_labels(checkpoint, make_frame, tmp_path):
    """Same frames, same checkpoint, same --size: predict --save-labels == evaluate --save-predictions."""
    root = tmp_path / "data"
    names = ["0001", "0002", "0003"]
    for sub in ("rgb", "depth", "labels"):
        (root / sub).mkdir(parents=True)
    for i, name in enumerate(names):
        rgb, depth = make_frame(45, 71, seed=10 + i)  # not the model size: both paths resize
        Image.fromarray(rgb).save(root / "rgb" / f"{name}.png")
        Image.fromarray(depth).save(root / "depth" / f"{name}.png")
        Image.fromarray(np.full((45, 71), i + 1, np.uint8)).save(root / "labels" / f"{name}.png")
    (root / "classes.json").write_text(json.dumps({"names": [f"c{i}" for i in range(5)]}))
    (root / "test.txt").write_text("\n".join(names) + "\n")
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--size", "64x96",
                 "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "ev"),
                 "--save-predictions", "3"]) == 0
    assert main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(root / "rgb"), "--depth",
                 str(root / "depth"), "--size", "64x96", "--save-labels", "--device", "cpu",
                 "--out", str(tmp_path / "pr")]) == 0
    for name in names:
        ev = np.asarray(Image.open(tmp_path / "ev" / "predictions" / f"{name}_labels.png"))
        pr = np.asarray(Image.open(tmp_path / "pr" / f"{name}_labels.png"))
        assert ev.shape == pr.shape == (45, 71)
        np.testing.assert_array_equal(ev, pr)
        assert len(np.unique(pr)) > 1  # a real prediction, not a constant map
        ev_col = np.asarray(Image.open(tmp_path / "ev" / "predictions" / f"{name}.png"))
        np.testing.assert_array_equal(ev_col, np.asarray(Image.open(tmp_path / "pr" / f"{name}.png")))


def test_predict_files_write_the_segmenters_labels_and_palette(small_model, make_frame, tmp_path):
    """The files predict writes decode to exactly what the Segmenter returns for the same frames:
    class ids in <name>_labels.png, the checkpoint's own palette in <name>.png, the blend in the
    overlay; frames of another size than the model's are resized and the labels come back at
    the frame size."""
    import asymformer
    from asymformer.deploy import Segmenter, predict_files

    palette = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 0], [0, 250, 250]], np.uint8)
    ckpt = tmp_path / "colored.safetensors"
    info = small_model.info.replace(class_names=[f"c{i}" for i in range(5)], colors=palette.tolist())
    asymformer.save_model(small_model, ckpt, normalization="nyuv2_official", info=info)
    frames = {}
    for sub in ("rgb", "depth"):
        (tmp_path / sub).mkdir()
    for i, name in enumerate(["f0", "f1", "f2"]):
        rgb, mm = make_frame(45, 71, seed=20 + i)
        frames[name] = (rgb, mm)
        Image.fromarray(rgb).save(tmp_path / "rgb" / f"{name}.png")  # lossless: the same pixels come back
        if name == "f2":  # float metres, as the CLI reads .npy
            np.save(tmp_path / "depth" / f"{name}.npy", mm.astype(np.float32) / 1000)
        else:
            Image.fromarray(mm).save(tmp_path / "depth" / f"{name}.png")
    seg = Segmenter(ckpt, device="cpu", size=(64, 96))
    assert np.array_equal(seg.colors, palette)
    out = tmp_path / "out"
    summary = predict_files(seg, pair_files(tmp_path / "rgb", tmp_path / "depth"), out, save_labels=True,
                            overlay=True, alpha=0.25, progress=False)
    assert summary["frames"] == 3 and [f["name"] for f in summary["per_frame"]] == ["f0", "f1", "f2"]
    for name, (rgb, mm) in frames.items():
        want = seg(rgb, mm)  # uint16 millimetres straight from memory
        labels = np.asarray(Image.open(out / f"{name}_labels.png"))
        assert labels.shape == (45, 71) and labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, want.labels)
        assert len(np.unique(labels)) > 1  # a real prediction, not a constant map
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}.png")), palette[want.labels])
        blend = np.rint(rgb * 0.75 + palette[want.labels].astype(np.float32) * 0.25)
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}_overlay.png")), blend)
        frame = next(f for f in summary["per_frame"] if f["name"] == name)
        assert frame["mean_confidence"] == pytest.approx(float(want.confidence.mean()), abs=1e-4)
