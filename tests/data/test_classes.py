"""Class lists against the real classMapping40.mat, and the datasets' colours (drawing: tests/test_viz.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io

from asymformer.data.classes import (
    NYU40_CLASSES,
    NYU40_COLORS,
    SUN37_CLASSES,
    SUN37_COLORS,
)


def nyuv2_structure(d) -> dict:
    """What the preparation code relies on in splits.mat / classMapping40.mat: variables, shapes,
    dtypes, index ranges, the 40 class names (as spelled in the file) and where "floor" maps."""
    s = scipy.io.loadmat(d / "splits.mat")
    m = scipy.io.loadmat(d / "classMapping40.mat")
    raw = [str(x[0]) for x in m["allClassName"][0]]
    return {
        "splits": {k: {"shape": list(s[k].shape), "dtype": str(s[k].dtype), "min": int(s[k].min()),
                       "max": int(s[k].max())} for k in ("trainNdxs", "testNdxs")},
        "disjoint_and_complete": sorted(np.concatenate([s["trainNdxs"][:, 0], s["testNdxs"][:, 0]]).tolist())
        == list(range(1, 1450)),
        "mapClass": {"shape": list(m["mapClass"].shape), "dtype": str(m["mapClass"].dtype),
                     "range": [int(m["mapClass"].min()), int(m["mapClass"].max())]},
        "allClassName": len(raw),
        "floor_maps_to": int(m["mapClass"][0][raw.index("floor")]),
        "className": [str(x[0]) for x in m["className"][0]],
    }


RECORDED = json.loads((Path(__file__).parents[1] / "fixtures" / "nyuv2_structure.json").read_text())


def test_nyu40_names_are_the_class_mapping_names():
    # The .mat spells "refridgerator"; we fix the spelling, everything else is identical.
    assert [n.replace("refridgerator", "refrigerator") for n in RECORDED["className"]] == list(NYU40_CLASSES)


def test_fabricated_splits_and_mapping_have_the_real_files_structure(nyuv2_mat_dir, shared_dir_or_none):
    """The preparation tests run on fabricated .mat files with the structure recorded from the real
    ones (tests/fixtures/nyuv2_structure.json). Where the real files are present (../shared, as in
    CI) the record itself is checked against them, so it cannot drift from the real files."""
    def layout(facts):  # what fabricated files must share: all but the random upper index and class values
        splits = {k: {**v, "max": None} for k, v in facts["splits"].items()}
        return {**facts, "splits": splits, "mapClass": {**facts["mapClass"], "range": None}}

    assert layout(nyuv2_structure(nyuv2_mat_dir)) == layout(RECORDED)
    real = shared_dir_or_none / "data" / "nyuv2" if shared_dir_or_none else None
    if real is not None and (real / "splits.mat").is_file() and (real / "classMapping40.mat").is_file():
        assert nyuv2_structure(real) == RECORDED


def test_sun37_is_nyu_prefix_and_palettes_distinct():
    assert SUN37_CLASSES == NYU40_CLASSES[:37] and SUN37_CLASSES[-1] == "bag"
    assert NYU40_COLORS.shape == (40, 3) and NYU40_COLORS.dtype == np.uint8
    assert len({tuple(c) for c in NYU40_COLORS}) == 40
    assert not (NYU40_COLORS == 0).all(axis=1).any()  # black is reserved for void
    np.testing.assert_array_equal(SUN37_COLORS, NYU40_COLORS[:37])

