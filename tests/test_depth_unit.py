"""One name for the depth unit (metres per stored value): `depth_unit` in the CLI (--depth-unit),
the API (read_depth, Segmenter, open_dataset) and dataset files; 0.1's spellings still work for
one release, with a DeprecationWarning that names the replacement."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

import asymformer
from asymformer.data import open_dataset
from asymformer.data.io import read_depth
from asymformer.deploy import Segmenter


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter(asymformer.create_model("asymformer_b0_a", num_classes=3).eval(), device="cpu")


def test_read_depth_takes_depth_unit_and_still_the_old_unit_keyword(tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray(np.array([[100, 2000]], np.uint16)).save(path)
    np.testing.assert_allclose(read_depth(path, depth_unit=1e-4), [[0.01, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(read_depth(path, 1e-4), [[0.01, 0.2]], rtol=1e-6)  # positional, as in 0.1
    with pytest.warns(DeprecationWarning, match=r"read_depth: keyword unit is deprecated, use depth_unit .*0\.3"):
        old = read_depth(path, unit=1e-4)
    np.testing.assert_array_equal(old, read_depth(path, depth_unit=1e-4))
    with pytest.raises(TypeError, match="depth_unit= only"):
        read_depth(path, depth_unit=1e-4, unit=1e-4)


def test_segmenter_depth_unit_and_the_old_depth_scale(segmenter):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    tenths = rng.integers(5, 60, (40, 48)).astype(np.uint8)  # 8-bit depth in 0.1 m steps
    new = segmenter(rgb, tenths, depth_unit=0.1, return_logits=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current name warns about nothing
        np.testing.assert_array_equal(segmenter(rgb, tenths.astype(np.float32) / 10, return_logits=True).labels,
                                      new.labels)
    with pytest.warns(DeprecationWarning, match="Segmenter: keyword depth_scale is deprecated, use depth_unit") as w:
        old = segmenter(rgb, tenths, depth_scale=0.1, return_logits=True)
    assert w[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_array_equal(old.logits, new.logits)

    with pytest.warns(DeprecationWarning, match="depth_scale is deprecated"):
        seg = Segmenter(segmenter.model, device="cpu", depth_scale=0.1)
    assert seg.depth_unit == 0.1
    np.testing.assert_array_equal(seg(rgb, tenths, return_logits=True).logits, new.logits)
    with pytest.warns(DeprecationWarning, match=r"Segmenter\.depth_scale is deprecated, use depth_unit"):
        assert seg.depth_scale == 0.1
    with pytest.raises(ValueError, match="depth_unit must be a positive number"):
        Segmenter(segmenter.model, device="cpu", depth_unit=0)


def test_dataset_files_of_0_1_keep_their_depth_unit_key(tmp_path):
    """classes.json written by 0.1 (`depth_unit`) loads unchanged, and --depth-unit overrides it."""
    root = tmp_path / "ds"
    for sub in ("rgb", "depth", "labels"):
        (root / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "rgb" / "a.png")
    Image.fromarray(np.full((32, 32), 25000, np.uint16)).save(root / "depth" / "a.png")
    Image.fromarray(np.ones((32, 32), np.uint8)).save(root / "labels" / "a.png")
    (root / "classes.json").write_text(json.dumps({"names": ["x"], "depth_unit": 1e-4, "labels": "one_based"}))
    (root / "train.txt").write_text("a\n")
    assert open_dataset(root, "train", check=False)[0]["depth"][0, 0] == pytest.approx(2.5)
    assert open_dataset(root, "train", depth_unit=1e-5, check=False)[0]["depth"][0, 0] == pytest.approx(0.25)
