"""Class lists against the real classMapping40.mat, and the datasets' colours (drawing: tests/test_viz.py)."""

from __future__ import annotations

import numpy as np
import scipy.io

from asymformer.data.classes import (
    NYU40_CLASSES,
    NYU40_COLORS,
    SUN37_CLASSES,
    SUN37_COLORS,
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

