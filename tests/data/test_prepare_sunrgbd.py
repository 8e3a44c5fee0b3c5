"""prepare sunrgbd on fabricated toolbox files (the real ones are not available to the tests)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from asymformer.cli import main
from asymformer.data import open_dataset
from asymformer.data.io import read_label, read_rgb, write_png
from asymformer.data.prepare_sunrgbd import decode_depth, prepare_sunrgbd

PREFIX = "/n/fs/sun3d/data/SUNRGBD/"
# (sequence folder, H, W, split): two cameras with different sizes
FRAMES = [("kv1/NYUdata/NYU0001", 6, 8, "test"), ("kv2/kinect2data/000002_x", 5, 7, "train"),
          ("realsense/lg/2014_a", 6, 8, "train"), ("xtion/sun3d/b", 4, 9, "test")]


def encode_depth(mm):
    """The toolbox's storage: a 3-bit circular left shift of the millimetres."""
    mm = mm.astype(np.uint16)
    return (mm << np.uint16(3)) | (mm >> np.uint16(13))


def _label(k, h, w):
    return (np.arange(h * w).reshape(h, w) + k) % 38


@pytest.fixture()
def toolbox(tmp_path):
    root = tmp_path / "SUNRGBD"
    meta = np.zeros((1, len(FRAMES)), dtype=[("sequenceName", "O"), ("rgbpath", "O"), ("depthpath", "O")])
    with h5py.File(tmp_path / "SUNRGBD2Dseg.mat", "w") as f:
        refs = []
        for k, (seq, h, w, _) in enumerate(FRAMES):
            rgb = np.full((h, w, 3), 40 * k, np.uint8)
            (root / seq / "image").mkdir(parents=True)
            Image.fromarray(rgb).save(root / seq / "image" / "img.jpg", quality=100)
            mm = np.full((h, w), 1234 + k, np.uint16)
            mm[0, 0], mm[1, 1] = 0, 9000
            write_png(root / seq / "depth_bfx" / "d.png", encode_depth(mm))
            write_png(root / seq / "depth" / "d.png", encode_depth(mm // 2))
            refs.append(f.create_dataset(f"#refs#/{k}", data=_label(k, h, w).T.astype(np.float64)).ref)
            meta[0, k] = (f"SUNRGBD/{seq}", f"{PREFIX}{seq}/image/img.jpg", f"{PREFIX}{seq}/depth/d.png")
        f.create_dataset("SUNRGBD2Dseg/seglabel", data=np.array(refs, dtype=h5py.ref_dtype)[:, None])
    scipy.io.savemat(tmp_path / "SUNRGBDMeta.mat", {"SUNRGBDMeta": meta})
    split = {key: np.array([PREFIX + s + "/" for s, *_, sp in FRAMES if sp == name], dtype=object)
             for key, name in (("alltrain", "train"), ("alltest", "test"))}
    scipy.io.savemat(tmp_path / "allsplit.mat", split)
    return {"root": root, "meta": tmp_path / "SUNRGBDMeta.mat", "seg": tmp_path / "SUNRGBD2Dseg.mat",
            "split": tmp_path / "allsplit.mat", "out": tmp_path / "out"}


def test_decode_depth_circular_shift_and_clip():
    mm = np.array([[0, 1, 1234, 7999, 8000, 9000, 65535]], np.uint16)
    np.testing.assert_array_equal(decode_depth(encode_depth(mm)), [[0, 1, 1234, 7999, 8000, 8000, 8000]])
    assert decode_depth(np.array([[8]], np.int32))[0, 0] == 1  # PIL may give int32 for 16-bit PNGs


def test_prepare_writes_custom_layout(toolbox):
    stats = prepare_sunrgbd(**toolbox, expect_counts=False)
    out = toolbox["out"]
    assert stats["train"] == 2 and stats["test"] == 2 and stats["written"] == 4
    assert (out / "train.txt").read_text().split() == ["00002", "00003"]
    assert (out / "test.txt").read_text().split() == ["00001", "00004"]
    assert json.loads((out / "classes.json").read_text())["names"][36] == "bag"
    src = toolbox["root"] / FRAMES[1][0] / "image" / "img.jpg"
    assert (out / "rgb" / "00002.jpg").read_bytes() == src.read_bytes()  # JPEG copied, not re-encoded
    assert read_rgb(out / "rgb" / "00002.jpg").shape == (5, 7, 3)  # native size
    np.testing.assert_array_equal(read_label(out / "labels" / "00004.png"), _label(3, 4, 9))
    depth = read_label(out / "depth" / "00004.png")
    assert depth[0, 0] == 0 and depth[1, 1] == 8000 and depth[2, 2] == 1237
    ds = open_dataset(out, "test")
    assert ds.layout == "custom" and ds.num_classes == 37 and len(ds) == 2
    s = ds[1]
    assert s["depth"][2, 2] == pytest.approx(1.237) and s["label"][0, 0] == 2 and s["rgb"].shape == (4, 9, 3)
    assert (s["label"] == 255).sum() == (_label(3, 4, 9) == 0).sum()


def test_raw_depth_resume_and_counts(toolbox):
    prepare_sunrgbd(**toolbox, depth="raw", expect_counts=False)
    assert read_label(toolbox["out"] / "depth" / "00001.png")[2, 2] == 617
    (toolbox["out"] / "labels" / "00003.png").unlink()
    stats = prepare_sunrgbd(**toolbox, depth="raw", expect_counts=False)
    assert stats["written"] == 1 and stats["skipped"] == 3
    with pytest.raises(ValueError, match="expected {'train': 5285, 'test': 5050}.*--no-expect-counts"):
        prepare_sunrgbd(**toolbox)


def test_bad_inputs(toolbox, tmp_path):
    bad = dict(toolbox, meta=toolbox["split"])
    with pytest.raises(ValueError, match="no SUNRGBDMeta struct.*alltest"):
        prepare_sunrgbd(**bad, expect_counts=False)
    with pytest.raises(ValueError, match="no alltrain/alltest"):
        prepare_sunrgbd(**dict(toolbox, split=toolbox["meta"]), expect_counts=False)
    with pytest.raises(ValueError, match="not a MATLAB v7.3"):
        prepare_sunrgbd(**dict(toolbox, seg=toolbox["meta"]), expect_counts=False)
    (toolbox["root"] / FRAMES[1][0] / "image" / "img.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 source file\(s\).*000002_x/image/img.jpg"):
        prepare_sunrgbd(**toolbox, expect_counts=False)


def test_cli_runs(toolbox, capsys):
    args = ["prepare", "sunrgbd", "--no-expect-counts"]
    for k in ("root", "meta", "seg", "split", "out"):
        args += [f"--{k}", str(toolbox[k])]
    assert main(args) == 0
    assert "2 train / 2 test" in capsys.readouterr().out
