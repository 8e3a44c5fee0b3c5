"""open_dataset on tiny fabricated copies of every layout, auto-detection and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from asymformer.data import open_dataset
from asymformer.data.classes import NYU40_CLASSES, SUN37_CLASSES
from asymformer.data.io import greys_r_table, write_png

H, W = 8, 10
NAMES = {"train": ["0001", "0003"], "test": ["0002"]}


def _sample(i: int):
    """Deterministic sample i: rgb, depth in mm (uint16), one-based label (0 void, 1..5)."""
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mm = rng.integers(0, 5000, (H, W)).astype(np.uint16)
    mm[0, 0] = 0
    label = rng.integers(1, 6, (H, W)).astype(np.uint8)
    label[0, 1] = 0
    return rgb, mm, label


def _write_splits(root, names=NAMES, fmt="{}"):
    for split, ns in names.items():
        (root / f"{split}.txt").write_text("".join(fmt.format(n) + "\n" for n in ns))


def make_custom(root, labels="one_based", rgb_ext=".png"):
    meta = {"names": ["a", "b", "c", "d", "e"], "colors": [[i * 10, 0, 0] for i in range(5)],
            "depth_unit": 0.001, "labels": labels}
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps(meta))
    for i, n in enumerate(sum(NAMES.values(), [])):
        rgb, mm, label = _sample(i)
        if labels == "zero_based":
            label = np.where(label == 0, 255, label - 1).astype(np.uint8)
        (root / "rgb").mkdir(exist_ok=True)
        Image.fromarray(rgb).save(root / "rgb" / f"{n}{rgb_ext}", quality=95)
        write_png(root / "depth" / f"{n}.png", mm)
        write_png(root / "labels" / f"{n}.png", label)
    _write_splits(root)
    return root


def make_nyuv2(root):
    for i, n in enumerate(sum(NAMES.values(), [])):
        rgb, mm, label = _sample(i)
        write_png(root / "images" / f"{n}.png", rgb)
        write_png(root / "depths" / f"{n}.png", mm)
        write_png(root / "labels" / f"{n}.png", label)
    _write_splits(root)
    return root


def make_sun(root):
    for split, ns in NAMES.items():
        for i, n in enumerate(ns):
            rgb, mm, label = _sample(i)
            (root / f"{split}_image").mkdir(parents=True, exist_ok=True)
            np.save(root / f"{split}_image" / f"{n}.npy", rgb)
            write_png(root / f"{split}_depth" / f"{n}.png", (mm * 10).astype(np.uint16))
            write_png(root / f"{split}_label" / f"{n}.png", label)
    _write_splits(root)
    return root


def make_esanet(root, label_dir="labels_40", txt=True):
    for split, ns in NAMES.items():
        for i, n in enumerate(ns):
            rgb, mm, label = _sample(i)
            write_png(root / split / "rgb" / f"{n}.png", rgb)
            write_png(root / split / "depth" / f"{n}.png", mm)
            write_png(root / split / label_dir / f"{n}.png", label)
    if txt:
        _write_splits(root)
    return root


def make_dformer(root):
    for i, n in enumerate(sum(NAMES.values(), [])):
        rgb, mm, label = _sample(i)
        (root / "RGB").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(root / "RGB" / f"{n}.jpg", quality=95)
        write_png(root / "Depth" / f"{n}.png", (mm // 20).astype(np.uint8))
        write_png(root / "Label" / f"{n}.png", label)
    _write_splits(root, fmt="RGB/{}.jpg")
    return root


def _check_sample(s, name, depth_scale=0.001, i=None):
    assert s["name"] == name
    assert s["rgb"].dtype == np.uint8 and s["rgb"].shape == (H, W, 3)
    assert s["depth"].dtype == np.float32 and s["depth"].shape == (H, W)
    assert s["label"].dtype == np.int64 and s["label"].shape == (H, W)
    rgb, mm, label = _sample(i)
    np.testing.assert_allclose(s["depth"], mm * depth_scale, rtol=1e-6)
    assert s["depth"][0, 0] == 0
    assert s["label"][0, 1] == 255
    np.testing.assert_array_equal(s["label"][label > 0], label[label > 0].astype(np.int64) - 1)
    return rgb


@pytest.mark.parametrize("maker, layout, classes, unit", [
    (make_nyuv2, "asymformer_nyuv2", NYU40_CLASSES, 0.001),
    (make_sun, "asymformer_sunrgbd", SUN37_CLASSES, 0.001),
    (make_esanet, "esanet", NYU40_CLASSES, 0.001),
])
def test_layouts_autodetect_and_values(tmp_path, maker, layout, classes, unit):
    root = maker(tmp_path / "ds")
    ds = open_dataset(root, "train")
    assert ds.layout == layout and len(ds) == 2 and ds.names == NAMES["train"]
    assert tuple(ds.class_names) == classes and ds.colors.shape == (len(classes), 3)
    assert ds.num_classes == len(classes) and ds.ignore_index == 255
    rgb = _check_sample(ds[1], "0003", unit, i=1)
    np.testing.assert_array_equal(ds[1]["rgb"], rgb)
    assert len(open_dataset(root, "test", layout=layout)) == 1


def test_custom_layout_both_conventions_and_jpg(tmp_path):
    one = open_dataset(make_custom(tmp_path / "one"), "test")
    zero = open_dataset(make_custom(tmp_path / "zero", labels="zero_based", rgb_ext=".jpg"), "test")
    assert one.layout == zero.layout == "custom" and one.class_names == ["a", "b", "c", "d", "e"]
    assert one.colors[3].tolist() == [30, 0, 0]
    np.testing.assert_array_equal(one[0]["label"], zero[0]["label"])
    _check_sample(one[0], "0002", i=2)
    assert zero[0]["rgb"].shape == (H, W, 3)  # jpg found without a listed extension


def test_esanet_without_txt_and_labels_37(tmp_path):
    ds = open_dataset(make_esanet(tmp_path / "e", label_dir="labels_37", txt=False), "train")
    assert ds.names == ["0001", "0003"] and ds.num_classes == 37


def test_dformer_relative_depth_and_warning(tmp_path):
    root = make_dformer(tmp_path / "dformer_nyu")
    with pytest.warns(UserWarning, match="metric depth is lost"):
        ds = open_dataset(root, "train")
    assert ds.layout == "dformer" and ds.normalization == "dformer" and ds.num_classes == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 8-bit depth is expected here: no per-file warning
        s = ds[0]
    _, mm, _ = _sample(0)  # grey levels of matplotlib's Greys_r colormap, inverted to relative depth
    np.testing.assert_allclose(s["depth"], greys_r_table()[1][mm // 20], rtol=1e-6)
    assert s["depth"].max() <= 1.0 and s["name"] == "0001"
    assert np.all(np.diff(greys_r_table()[1]) >= 0)  # monotonic: darker is nearer


def test_dataset_json_overrides_classes_and_unit(tmp_path):
    root = make_nyuv2(tmp_path / "p")
    (root / "dataset.json").write_text(json.dumps({"names": list(SUN37_CLASSES), "depth_unit": 0.0005}))
    ds = open_dataset(root, "train")
    assert ds.num_classes == 37
    _check_sample(ds[0], "0001", 0.0005, i=0)


def test_auto_detection_failure_lists_layouts(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ValueError, match="asymformer_nyuv2: images/.*dformer: RGB/"):
        open_dataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="nope"):
        open_dataset(tmp_path / "nope", "train")
    with pytest.raises(ValueError, match="unknown layout 'bogus'"):
        open_dataset(tmp_path, "train", layout="bogus")


def test_unknown_split_lists_available(tmp_path):
    root = make_nyuv2(tmp_path / "p")
    with pytest.raises(ValueError, match="unknown split 'val'.*available splits.*test, train"):
        open_dataset(root, "val")


def test_missing_files_listed_with_count(tmp_path):
    root = make_nyuv2(tmp_path / "p")
    (root / "depths" / "0003.png").unlink()
    (root / "labels" / "0001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 file\(s\).*labels/0001.png.*depths/0003.png"):
        open_dataset(root, "train")


def test_size_mismatch_names_file(tmp_path):
    root = make_nyuv2(tmp_path / "p")
    write_png(root / "depths" / "0003.png", np.zeros((H, W + 1), np.uint16))
    with pytest.raises(ValueError, match=r"depths/0003.png is 8x11 but its RGB image.*Likely cause: depth not "
                                         r"registered"):
        open_dataset(root, "train")  # the opening check reads a sample of frames
    ds = open_dataset(root, "train", check=False)
    ds[0]
    with pytest.raises(ValueError, match=r"depths/0003.png is 8x11 but its RGB image"):
        ds[1]


def test_label_out_of_range_names_file_and_values(tmp_path):
    root = make_nyuv2(tmp_path / "p")
    write_png(root / "labels" / "0002.png", np.full((H, W), 41, np.uint8))
    with pytest.raises(ValueError, match=r"labels/0002.png has values \[41\] outside 0..40.*--classes K"):
        open_dataset(root, "test")
    with pytest.raises(ValueError, match=r"labels/0002.png has values \[41\] outside 0..40"):
        open_dataset(root, "test", check=False)[0]
    root = make_custom(tmp_path / "c", labels="zero_based")
    write_png(root / "labels" / "0002.png", np.full((H, W), 5, np.uint8))
    with pytest.raises(ValueError, match=r"values \[5\] outside 0..4 or 255"):
        open_dataset(root, "test")


def test_bad_classes_json(tmp_path):
    root = make_custom(tmp_path / "c")
    (root / "classes.json").write_text(json.dumps({"names": ["a", "b"], "labels": "two_based"}))
    with pytest.raises(ValueError, match="'labels' must be one of"):
        open_dataset(root, "train")
    (root / "classes.json").write_text(json.dumps({"names": ["a", "b"], "colors": [[1, 2, 3]]}))
    with pytest.raises(ValueError, match="'colors' must be 2"):
        open_dataset(root, "train")


class _ToTensors:
    """A seeded 'augmentation' so worker-independence of the rng is actually tested."""

    def __call__(self, sample, rng):
        noise = rng.standard_normal()
        return {"rgb": torch.from_numpy(sample["rgb"]).permute(2, 0, 1).float() + noise,
                "depth": torch.from_numpy(sample["depth"])[None],
                "label": torch.from_numpy(sample["label"]), "name": sample["name"]}


def test_dataloader_workers_give_same_batches(tmp_path):
    root = make_custom(tmp_path / "c")
    ds = open_dataset(root, "train", transform=_ToTensors(), seed=3)
    ds.set_epoch(2)

    def batches(workers):
        return list(DataLoader(ds, batch_size=1, num_workers=workers, shuffle=False))

    single, multi = batches(0), batches(2)
    assert len(single) == len(multi) == 2
    for a, b in zip(single, multi):
        assert a["name"] == b["name"]
        for k in ("rgb", "depth", "label"):
            assert torch.equal(a[k], b[k])
    assert not torch.equal(single[0]["rgb"], torch.from_numpy(_sample(0)[0]).permute(2, 0, 1).float())
