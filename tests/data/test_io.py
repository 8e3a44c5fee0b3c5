"""Image readers: formats, channel handling, units and their error messages."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from asymformer.data import io
from asymformer.data.io import read_depth, read_label, read_rgb, write_png


def test_rgb_png_jpg_npy_grey_rgba(tmp_path):
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgb)
    np.save(tmp_path / "a.npy", rgb.astype(np.float64))
    out = read_rgb(tmp_path / "a.npy")
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=100)
    assert np.abs(read_rgb(tmp_path / "a.jpg").astype(int) - rgb).max() < 12
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "g.png")
    grey = read_rgb(tmp_path / "g.png")
    assert grey.shape == (4, 5, 3) and (grey == rgb[:, :, :1]).all()
    Image.fromarray(np.dstack([rgb, np.full((4, 5), 7, np.uint8)])).save(tmp_path / "r.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "r.png"), rgb)
    assert read_rgb(tmp_path / "a.png").flags.writeable


def test_depth_units_and_8bit_warning(tmp_path):
    mm = np.array([[0, 1500], [65535, 10]], np.uint16)
    write_png(tmp_path / "d.png", mm)
    d = read_depth(tmp_path / "d.png", 0.001)
    assert d.dtype == np.float32 and d[0, 1] == pytest.approx(1.5) and d[0, 0] == 0
    write_png(tmp_path / "d8.png", mm.astype(np.uint8))
    with pytest.warns(UserWarning, match="d8.png is 8-bit"):
        read_depth(tmp_path / "d8.png", 0.001)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8) + np.array([1, 2, 3], np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="c.png has 3 different channels"):
        read_depth(tmp_path / "c.png", 0.001, expect_16bit=False)


def test_label_palette_png_keeps_indices(tmp_path):
    idx = np.array([[0, 3], [40, 255]], np.uint8)
    img = Image.fromarray(idx, mode="P")
    img.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    img.save(tmp_path / "p.png")
    out = read_label(tmp_path / "p.png")
    assert out.dtype == np.int64 and out.tolist() == idx.tolist()
    write_png(tmp_path / "col.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="col.png has shape"):
        read_label(tmp_path / "col.png")


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_rgb(tmp_path / "nothere.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read depth file .*bad.png"):
        read_depth(tmp_path / "bad.png", 0.001)


def test_write_png_atomic_and_validated(tmp_path):
    write_png(tmp_path / "sub" / "x.png", np.ones((3, 3), np.uint16) * 1234)
    assert read_label(tmp_path / "sub" / "x.png").max() == 1234
    assert os.listdir(tmp_path / "sub") == ["x.png"]  # no temp leftovers
    with pytest.raises(ValueError, match="expected uint8"):
        write_png(tmp_path / "y.png", np.zeros((3, 3), np.float32))
    assert not (tmp_path / "y.png").exists()


def test_depth_formats_units_and_refusals(tmp_path):
    from asymformer.data.io import read_depth

    m = np.array([[0.0, 1.25], [np.nan, 3.5]], np.float32)
    np.save(tmp_path / "d.npy", m)
    np.savez(tmp_path / "d.npz", depth=m, other=m * 2)
    Image.fromarray(m).save(tmp_path / "d.tiff")
    for name in ("d.npy", "d.npz", "d.tiff"):  # float files are metres; NaN is invalid (0)
        np.testing.assert_array_equal(read_depth(tmp_path / name), np.nan_to_num(m))
    np.testing.assert_allclose(read_depth(tmp_path / "d.npy", 0.5), np.nan_to_num(m) * 0.5)
    np.savez(tmp_path / "two.npz", a=m, b=m)
    with pytest.raises(ValueError, match="holds arrays"):
        read_depth(tmp_path / "two.npz")
    np.save(tmp_path / "mm.npy", m * 1000)
    with pytest.raises(ValueError, match="depth reaches 3500 m.*--depth-unit 0.001"):
        read_depth(tmp_path / "mm.npy")
    write_png(tmp_path / "d8.png", np.full((2, 2), 9, np.uint8))
    with pytest.raises(ValueError, match="8-bit depth: its unit is unknown"):
        read_depth(tmp_path / "d8.png")
    with pytest.raises(ValueError, match="must be a positive number"):
        read_depth(tmp_path / "d.npy", 0)
    (tmp_path / "d.exr").write_bytes(b"v/1")
    with pytest.raises(ValueError, match="is OpenEXR, which is not supported; save float depth in metres"):
        read_depth(tmp_path / "d.exr")
    rgba = np.dstack([np.full((2, 2, 3), 77, np.uint8), np.full((2, 2), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "grey_rgba.png")  # matplotlib-style grey RGBA
    np.testing.assert_allclose(read_depth(tmp_path / "grey_rgba.png", 0.01, expect_16bit=False), 0.77, rtol=1e-6)


# One frame per role, in a dtype every format of that role stores losslessly (JPEG aside: its
# colours are a smooth ramp, which JPEG at PIL's default quality keeps within a few levels).
_ROLE_ARRAYS = {
    "rgb": (np.arange(4)[:, None, None] * 10 + np.arange(5)[None, :, None] * 8 + [20, 90, 160]).astype(np.uint8),
    "depth": np.array([[0, 1500, 3000, 65535, 7], [10, 20, 30, 40, 50]], np.uint16),
    "label": np.array([[0, 1, 2, 40, 255], [3, 4, 5, 6, 7]], np.uint8),
}


def _write_any(path, arr) -> None:
    """.npy / .npz with numpy, anything else with PIL by its suffix (as the readers decide)."""
    if path.suffix == ".npy":
        np.save(path, arr)
    elif path.suffix == ".npz":
        np.savez(path, arr)
    else:
        Image.fromarray(arr).save(path)


@pytest.mark.parametrize("role, suffix", [("rgb", s) for s in io.RGB_SUFFIXES]
                         + [("depth", s) for s in io.DEPTH_SUFFIXES] + [("label", s) for s in io.LABEL_SUFFIXES])
def test_every_listed_suffix_is_read_by_its_reader(tmp_path, role, suffix):
    """The suffix lists are what layouts and `predict` look for: each entry must really be readable."""
    arr = _ROLE_ARRAYS[role]
    path = tmp_path / f"frame{suffix}"
    _write_any(path, arr)
    if role == "rgb":
        out = read_rgb(path)
        tol = 8 if suffix in (".jpg", ".jpeg") else 0
        assert out.dtype == np.uint8 and np.abs(out.astype(int) - arr).max() <= tol
    elif role == "depth":
        np.testing.assert_array_equal(read_depth(path), arr.astype(np.float32) * np.float32(0.001))
    else:
        np.testing.assert_array_equal(read_label(path), arr.astype(np.int64))


def test_suffix_lists_differ_only_where_a_format_is_unfit():
    """JPEG is lossy: fine for colour, never for depth values or class indices."""
    assert {".jpg", ".jpeg"} <= set(io.RGB_SUFFIXES)
    assert not {".jpg", ".jpeg"} & (set(io.DEPTH_SUFFIXES) | set(io.LABEL_SUFFIXES))
    assert set(io.ANY_SUFFIXES) == set(io.RGB_SUFFIXES) | set(io.DEPTH_SUFFIXES) | set(io.LABEL_SUFFIXES)
