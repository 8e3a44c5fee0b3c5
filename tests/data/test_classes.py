"""Class lists against the real classMapping40.mat, palettes and colorize."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from asymformer.data.classes import (
    NYU40_CLASSES,
    NYU40_COLORS,
    SUN37_CLASSES,
    SUN37_COLORS,
    colorize,
    make_palette,
)


def test_nyu40_names_match_real_class_mapping(real_nyuv2_mat_dir):
    mat = scipy.io.loadmat(real_nyuv2_mat_dir / "classMapping40.mat")
    real = [str(x[0]) for x in mat["className"][0]]
    # The .mat spells "refridgerator"; we fix the spelling, everything else is identical.
    assert [n.replace("refridgerator", "refrigerator") for n in real] == list(NYU40_CLASSES)


def test_real_splits_and_mapping_have_the_structure_the_fabricated_ones_copy(real_nyuv2_mat_dir):
    """The preparation tests run on fabricated .mat files; this pins them to the real ones."""
    s = scipy.io.loadmat(real_nyuv2_mat_dir / "splits.mat")
    assert s["trainNdxs"].shape == (795, 1) and s["testNdxs"].shape == (654, 1)
    assert s["trainNdxs"].dtype == np.uint16 and s["trainNdxs"].min() == 3 and s["testNdxs"].min() == 1
    m = scipy.io.loadmat(real_nyuv2_mat_dir / "classMapping40.mat")
    assert m["mapClass"].shape == (1, 894) and m["mapClass"].dtype == np.uint8
    names = [str(x[0]) for x in m["allClassName"][0]]
    assert m["mapClass"][0][names.index("floor")] == 2


def test_sun37_is_nyu_prefix_and_palettes_distinct():
    assert SUN37_CLASSES == NYU40_CLASSES[:37] and SUN37_CLASSES[-1] == "bag"
    assert NYU40_COLORS.shape == (40, 3) and NYU40_COLORS.dtype == np.uint8
    assert len({tuple(c) for c in NYU40_COLORS}) == 40
    assert not (NYU40_COLORS == 0).all(axis=1).any()  # black is reserved for void
    np.testing.assert_array_equal(SUN37_COLORS, NYU40_COLORS[:37])
    assert len({tuple(c) for c in make_palette(255)}) == 255


def test_colorize_maps_classes_and_void():
    label = np.array([[0, 1, 255], [39, 2, 0]])
    out = colorize(label, NYU40_COLORS)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == NYU40_COLORS[0].tolist()
    assert out[1, 0].tolist() == NYU40_COLORS[39].tolist()
    assert out[0, 2].tolist() == [0, 0, 0]


def test_colorize_rejects_out_of_range_and_bad_shapes():
    with pytest.raises(ValueError, match=r"\[37, 40\] are outside 0..36"):
        colorize(np.array([[37, 40, 1]]), SUN37_COLORS)
    with pytest.raises(ValueError, match="H×W integer"):
        colorize(np.zeros((2, 2), np.float32), NYU40_COLORS)
    with pytest.raises(ValueError, match="K×3"):
        colorize(np.zeros((2, 2), np.int64), np.zeros((4,)))

