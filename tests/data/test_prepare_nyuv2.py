"""prepare nyuv2 on a fabricated v7.3-style file (real axis order, 6x8 frames) + the real splits."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io

from asymformer.cli import main
from asymformer.data import open_dataset
from asymformer.data.io import read_label, read_rgb
from asymformer.data.prepare_nyuv2 import prepare_nyuv2

N, H, W = 1449, 6, 8
FLOOR_894 = None  # filled from the real allClassName


@pytest.fixture(scope="module")
def nyu_mat(tmp_path_factory, nyuv2_mat_dir):
    """Frames i: image HxWx3 with value pattern (i % 200) + position; h5py axes reversed."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8)
    images[:, 0, W - 1] = [250, 10, 20]  # top-right corner marks the orientation
    depths = np.broadcast_to(np.linspace(0.5, 9.5, H * W, dtype=np.float32).reshape(H, W), (N, H, W)).copy()
    labels = rng.integers(0, 895, (N, H, W)).astype(np.uint16)
    names = [str(x[0]) for x in scipy.io.loadmat(nyuv2_mat_dir / "classMapping40.mat")["allClassName"][0]]
    labels[:, 1, 2] = names.index("floor") + 1
    labels[:, 0, 0] = 0
    path = tmp_path_factory.mktemp("nyu") / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images.transpose(0, 3, 2, 1), chunks=(1, 3, W, H))
        f.create_dataset("depths", data=depths.transpose(0, 2, 1), chunks=(1, W, H))
        f.create_dataset("rawDepths", data=(depths * 0.5).transpose(0, 2, 1), chunks=(1, W, H))
        f.create_dataset("labels", data=labels.transpose(0, 2, 1), chunks=(1, W, H))
    return path, images, depths, labels


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, nyu_mat, nyuv2_mat_dir):
    out = tmp_path_factory.mktemp("out")
    stats = prepare_nyuv2(nyu_mat[0], nyuv2_mat_dir / "splits.mat", nyuv2_mat_dir / "classMapping40.mat",
                          out, raw_depth=True)
    return out, stats


def test_counts_names_and_metadata(prepared):
    out, stats = prepared
    assert stats["train"] == 795 and stats["test"] == 654 and stats["written"] == N
    train = (out / "train.txt").read_text().split()
    test = (out / "test.txt").read_text().split()
    assert len(train) == 795 and len(test) == 654 and not set(train) & set(test)
    assert train[0] == "0003" and test[0] == "0001" and len(set(train) | set(test)) == N
    assert len(list((out / "labels").glob("*.png"))) == N
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["depth_unit"] == 0.001 and len(meta["names"]) == 40


def test_orientation_depth_and_label_mapping(prepared, nyu_mat, nyuv2_mat_dir):
    out, _ = prepared
    _, images, depths, labels = nyu_mat
    i = 2  # frame "0003"
    rgb = read_rgb(out / "images" / "0003.png")
    assert rgb.shape == (H, W, 3) and rgb[0, W - 1].tolist() == [250, 10, 20]
    np.testing.assert_array_equal(rgb, images[i])
    from PIL import Image

    with Image.open(out / "depths" / "0003.png") as im:
        mm = np.array(im)
    assert im.mode.startswith("I") and mm.shape == (H, W)
    np.testing.assert_array_equal(mm, np.rint(depths[i] * 1000).astype(int))
    assert mm[0, 0] == 500 and mm[-1, -1] == 9500
    lab = read_label(out / "labels" / "0003.png")
    assert lab[1, 2] == 2 and lab[0, 0] == 0  # 894 "floor" -> 40-class floor (2); 0 stays void
    lut = np.concatenate([[0], scipy.io.loadmat(nyuv2_mat_dir / "classMapping40.mat")["mapClass"][0]])
    np.testing.assert_array_equal(lab, lut[labels[i]])
    raw = read_label(out / "raw_depths" / "0003.png")
    assert raw[-1, -1] == 4750
    ds = open_dataset(out, "train")
    assert ds.layout == "asymformer_nyuv2" and len(ds) == 795
    s = ds[0]
    assert s["label"][1, 2] == 1 and s["label"][0, 0] == 255 and s["depth"][0, 0] == pytest.approx(0.5)


def test_resume_skips_finished_frames(prepared, nyu_mat, nyuv2_mat_dir):
    out, _ = prepared
    (out / "labels" / "0100.png").unlink()
    (out / "depths" / "0101.png").unlink()
    before = (out / "images" / "0005.png").stat().st_mtime_ns
    stats = prepare_nyuv2(nyu_mat[0], nyuv2_mat_dir / "splits.mat", nyuv2_mat_dir / "classMapping40.mat",
                          out, raw_depth=True)
    assert stats["written"] == 2 and stats["skipped"] == N - 2
    assert (out / "labels" / "0100.png").is_file() and (out / "depths" / "0101.png").is_file()
    assert (out / "images" / "0005.png").stat().st_mtime_ns == before


def test_bad_inputs_fail_clearly(tmp_path, nyu_mat, nyuv2_mat_dir):
    splits, mapping = nyuv2_mat_dir / "splits.mat", nyuv2_mat_dir / "classMapping40.mat"
    with pytest.raises(ValueError, match="MATLAB v5"):
        prepare_nyuv2(splits, splits, mapping, tmp_path / "o")
    with pytest.raises(ValueError, match="no trainNdxs/testNdxs.*mapClass"):
        prepare_nyuv2(nyu_mat[0], mapping, mapping, tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="--mat .*missing.mat"):
        prepare_nyuv2(tmp_path / "missing.mat", splits, mapping, tmp_path / "o")
    small = tmp_path / "small.mat"
    with h5py.File(small, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3, W, H), np.uint8))
    with pytest.raises(ValueError, match=r"lacks dataset\(s\) \['depths', 'labels'\]"):
        prepare_nyuv2(small, splits, mapping, tmp_path / "o")


def test_cli_reports_errors_as_one_line(tmp_path, nyuv2_mat_dir, capsys):
    rc = main(["prepare", "nyuv2", "--mat", str(tmp_path / "nope.mat"), "--splits",
               str(nyuv2_mat_dir / "splits.mat"), "--mapping", str(nyuv2_mat_dir / "classMapping40.mat"),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "nope.mat: file not found" in capsys.readouterr().err


# Couprie et al.'s 40 -> 13 mapping as class13Mapping.mat stores it (labels13, classNames)
LABELS13 = [12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5, 7, 3, 2, 6, 11, 7, 7, 7, 7, 7,
            7, 6, 7, 7, 7, 7, 7, 7, 6, 7]


def test_prepare_13_classes_with_the_mapping_file(nyu_mat, nyuv2_mat_dir, tmp_path, prepared):
    from asymformer.data.classes import NYU13_CLASSES

    m13 = tmp_path / "class13Mapping.mat"
    names = np.empty((1, 13), dtype=object)
    names[0, :] = list(NYU13_CLASSES)
    scipy.io.savemat(m13, {"classMapping13": {"labels13": np.array([LABELS13], np.uint8), "classNames": names}})
    out = tmp_path / "nyu13"
    args = ["prepare", "nyuv2", "--mat", str(nyu_mat[0]), "--splits", str(nyuv2_mat_dir / "splits.mat"),
            "--mapping", str(nyuv2_mat_dir / "classMapping40.mat"), "--out", str(out)]
    assert main([*args, "--classes", "13"]) == 2  # the mapping file is required
    assert main([*args, "--classes", "13", "--mapping13", str(m13)]) == 0
    ds = open_dataset(out, "train")
    assert tuple(ds.class_names) == NYU13_CLASSES and ds.num_classes == 13
    out40 = prepared[0]
    lut = np.concatenate([[255], np.array(LABELS13) - 1])  # 40-class file value (0 void, 1..40) -> 13
    for name in ("0003", "0004"):
        l40 = read_label(out40 / "labels" / f"{name}.png")
        np.testing.assert_array_equal(ds[ds.names.index(name)]["label"], lut[l40])
    assert main([*args, "--classes", "40"]) == 2  # resuming with another label set would mix files
