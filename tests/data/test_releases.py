"""open_dataset on releases written by the peers' own tools (tests/fixtures/releases, see its README).

Each fixture holds truth.npz, the arrays the files were written from, so every check compares
what we load with what the peer's tool was given, not with what we assumed its format is.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from asymformer.data import open_dataset
from asymformer.data.classes import NYU13_CLASSES, NYU40_CLASSES, SUN37_CLASSES

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "releases"


def _truth(name):
    with np.load(FIX / name / "truth.npz") as z:
        return {k: z[k] for k in z.files}


def _void_mapped(label_one_based):
    return np.where(label_one_based == 0, 255, label_one_based.astype(np.int64) - 1)


@pytest.mark.parametrize("classes, names", [(None, NYU40_CLASSES), (40, NYU40_CLASSES), (13, NYU13_CLASSES)])
def test_nicr_nyuv2_written_by_nicr_prepare(classes, names):
    truth = _truth("nicr_nyuv2")
    for split, count in (("train", 3), ("test", 2)):
        ds = open_dataset(FIX / "nicr_nyuv2", split, classes=classes)
        assert ds.layout == "nicr_nyuv2" and len(ds) == count
        assert tuple(ds.class_names) == names and ds.label_sets == (13, 40, 894)
        for i, name in enumerate(ds.names):
            s = ds[i]
            np.testing.assert_array_equal(s["rgb"], truth[f"{name}/rgb"])  # PNG: exact
            assert np.abs(s["depth"] - truth[f"{name}/depth"]).max() <= 0.001 + 1e-6  # NICR truncates to mm
            k = len(names)
            np.testing.assert_array_equal(s["label"], _void_mapped(truth[f"{name}/label{k}"]))
            assert set(np.unique(s["label"])) <= set(range(k)) | {255}


def test_nicr_nyuv2_894_and_missing_label_set_are_clear():
    with pytest.raises(ValueError, match="894-class labels are not supported.*--classes K"):
        open_dataset(FIX / "nicr_nyuv2", "train", classes=894)
    with pytest.raises(ValueError, match="has no 37-class labels; it holds label sets: 13, 40, 894"):
        open_dataset(FIX / "nicr_nyuv2", "train", classes=37)


def test_nicr_sunrgbd_rotated_depth_sensors_and_classes():
    truth = _truth("nicr_sunrgbd")
    ds = open_dataset(FIX / "nicr_sunrgbd", "train")
    assert ds.layout == "nicr_sunrgbd" and len(ds) == 8 and tuple(ds.class_names) == SUN37_CLASSES
    assert ds.sensors == ["kv1", "kv1", "kv2", "kv2", "realsense", "realsense", "xtion", "xtion"]
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert s["rgb"].shape == truth[f"{name}/rgb"].shape
        assert np.abs(s["rgb"].astype(int) - truth[f"{name}/rgb"]).mean() < 3  # JPEG: lossy
        mm = truth[f"{name}/depth_mm"]
        np.testing.assert_allclose(s["depth"], mm / 1000.0, atol=1e-6)  # decoded, not 8x too large
        np.testing.assert_array_equal(s["label"], _void_mapped(truth[f"{name}/label"]))
    assert {ds[i]["rgb"].shape[:2] for i in range(len(ds))} == {(24, 32), (27, 36), (28, 36)}
    sub = open_dataset(FIX / "nicr_sunrgbd", "test", sensors="kv2,xtion")
    assert len(sub) == 2 and sub.sensors == ["kv2", "xtion"] and all("/" in n for n in sub.names)
    assert len(open_dataset(FIX / "nicr_sunrgbd", "train", sensors=("realsense",))) == 2
    with pytest.raises(ValueError, match="unknown SUNRGBD sensor.*kv1, kv2, realsense, xtion"):
        open_dataset(FIX / "nicr_sunrgbd", "train", sensors="kinect")


def test_nicr_sunrgbd_read_linearly_is_caught_with_the_fix():
    with pytest.raises(ValueError, match=r"median valid depth .* m, outside .*rotated left by 3 bits.*"
                                         r"--depth-encoding sunrgbd_rotated"):
        open_dataset(FIX / "nicr_sunrgbd", "train", depth_encoding="linear")


def test_wrong_unit_is_caught_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"(millimetres read as metres|look like millimetres).*--depth-unit 0.001"):
        open_dataset(FIX / "nicr_nyuv2", "train", depth_unit=1.0)
    with pytest.raises(ValueError, match="depth_unit must be a positive number"):
        open_dataset(FIX / "nicr_nyuv2", "train", depth_unit=0)


@pytest.mark.parametrize("name, classes, count", [("dformer_nyuv2", NYU40_CLASSES, (3, 2)),
                                                  ("dformer_sunrgbd", SUN37_CLASSES, (2, 1))])
def test_dformer_matplotlib_rgba_depth(name, classes, count):
    truth = _truth(name)
    for split, n in zip(("train", "test"), count):
        with pytest.warns(UserWarning, match="metric depth is lost"):
            ds = open_dataset(FIX / name, split)
        assert ds.layout == "dformer" and len(ds) == n and tuple(ds.class_names) == classes
        assert ds.relative_depth and ds.normalization == "dformer"
        for i, stem in enumerate(ds.names):
            s = ds[i]
            assert np.abs(s["rgb"].astype(int) - truth[f"{stem}/rgb"]).mean() < 3  # JPEG: lossy
            d = truth[f"{stem}/depth"]
            rel = (d - d.min()) / (d.max() - d.min())  # plt.imsave: per-image min-max
            assert np.abs(s["depth"] - rel).max() <= 0.01  # within 1% of the range
            np.testing.assert_array_equal(s["label"], _void_mapped(truth[f"{stem}/label"]))


def test_class_count_never_from_folder_name(tmp_path):
    """A DFormer NYUv2 copy under a folder called 'sunrgbd' is still 40 classes (Label/ folder)."""
    root = tmp_path / "my_sunrgbd_data"
    shutil.copytree(FIX / "dformer_nyuv2", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert open_dataset(root, "train").num_classes == 40
    root = tmp_path / "nyu"
    shutil.copytree(FIX / "dformer_sunrgbd", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert open_dataset(root, "train").num_classes == 37


def test_cmx_hha_only_is_refused_clearly(tmp_path):
    for sub in ("RGB", "HHA", "Label"):
        (tmp_path / sub).mkdir()
    with pytest.raises(ValueError, match="HHA .* is a 3-channel encoding derived from depth, not depth"):
        open_dataset(tmp_path, "train")


def test_authors_npy_release():
    ds = open_dataset(FIX / "asymformer_npy_nyuv2", "train")
    assert ds.layout == "asymformer_npy" and len(ds) == 3 and ds.num_classes == 40
    s = ds[0]
    src = np.load(FIX / "asymformer_npy_nyuv2" / "depths" / "1.npy")
    np.testing.assert_array_equal(s["depth"], src)  # metres as stored
    root = FIX / "asymformer_npy_nyuv2"
    np.testing.assert_array_equal(s["rgb"], np.load(root / "images" / "1.npy"))
    np.testing.assert_array_equal(s["label"], _void_mapped(np.load(root / "labels40" / "1.npy")))
    assert len(open_dataset(FIX / "asymformer_npy_nyuv2", "test")) == 2


def test_unknown_label_set_says_how_to_name_it(tmp_path):
    root = tmp_path / "nicr_like"
    shutil.copytree(FIX / "nicr_nyuv2", root)
    for split in ("train", "test"):
        for sub in ("semantic_40", "semantic_894"):
            shutil.rmtree(root / split / sub)
        (root / split / "semantic_13").rename(root / split / "semantic_20")
    with pytest.raises(ValueError, match=r"no class names are known for the 20-class labels; write a "
                                         r"dataset.json with \{\"names\""):
        open_dataset(root, "train")
    names = [f"thing{i}" for i in range(20)]
    (root / "dataset.json").write_text(json.dumps({"names": names}))
    ds = open_dataset(root, "train")
    assert ds.class_names == names and ds.num_classes == 20 and ds.class_source.endswith("dataset.json")
