"""asymformer.viz, the one drawing module: palettes, label colours, the colour ramp, overlays,
panels, legends, attention maps and charts, checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from asymformer import viz
from asymformer.files import save_image

FIRST, LAST = (68, 1, 84), (253, 231, 37)  # the ends of viz.RAMP


def _has(img, color) -> bool:
    return bool((np.asarray(img)[..., :3] == np.array(color, np.uint8)).all(-1).any())


# ----------------------------------------------------------------------------- colours


def test_standard_palette_is_the_voc_construction_without_black():
    p = viz.palette(255)
    assert p.shape == (255, 3) and p.dtype == np.uint8
    assert p[:4].tolist() == [[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert len({tuple(c) for c in p}) == 255 and not (p == 0).all(1).any()  # distinct; black is void's
    np.testing.assert_array_equal(viz.palette(13), p[:13])  # a prefix: colours never move
    assert viz.palette(0).shape == (0, 3)


def test_palette_takes_recorded_colours_and_rejects_bad_ones():
    given = [[1, 2, 3], [255, 0, 10]]
    out = viz.palette(2, given)
    assert out.dtype == np.uint8 and out.tolist() == given
    for bad in ([[1, 2, 3]], [[1, 2, 3], [256, 0, 0]], [[1, 2, 3], [-1, 0, 0]], [[1, 2, 3], [0.5, 0, 0]],
                [["a", "b", "c"], [0, 0, 0]], [[1, 2], [3, 4]]):
        with pytest.raises(ValueError, match=r"'colors' must be 2 \[r, g, b\] triples"):
            viz.palette(2, bad)
    with pytest.raises(ValueError, match="num_classes must be >= 0"):
        viz.palette(-1)


def test_dataset_colours_come_from_the_one_palette(tmp_path):
    from asymformer.data.classes import NYU13_COLORS, NYU40_COLORS

    np.testing.assert_array_equal(NYU40_COLORS, viz.palette(40))
    np.testing.assert_array_equal(NYU13_COLORS, viz.palette(13))


def test_colorize_maps_classes_and_void():
    colors = viz.palette(40)
    out = viz.colorize(np.array([[0, 1, 255], [39, 2, 0]]), colors)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == colors[0].tolist() and out[1, 0].tolist() == colors[39].tolist()
    assert out[0, 2].tolist() == [0, 0, 0]


def test_colorize_rejects_out_of_range_and_bad_shapes():
    with pytest.raises(ValueError, match=r"\[37, 40\] are outside 0..36"):
        viz.colorize(np.array([[37, 40, 1]]), viz.palette(37))
    with pytest.raises(ValueError, match="H×W integer"):
        viz.colorize(np.zeros((2, 2), np.float32), viz.palette(4))
    with pytest.raises(ValueError, match="K×3"):
        viz.colorize(np.zeros((2, 2), np.int64), np.zeros((4,)))


def test_colormap_ends_middle_and_invalid_pixels():
    v = np.array([[2.0, 4.0, 6.0], [np.nan, 3.0, 100.0]], np.float32)
    invalid = np.zeros(v.shape, bool)
    invalid[1, 2] = True  # excluded from the range and drawn black
    out = viz.colormap(v, invalid=invalid)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == list(FIRST) and out[0, 2].tolist() == list(LAST)
    assert out[0, 1].tolist() == viz.RAMP[128].tolist()  # halfway (4 of 2..6)
    assert out[1, 0].tolist() == [0, 0, 0] and out[1, 2].tolist() == [0, 0, 0]
    clipped = viz.colormap(np.array([[-5.0, 0.5, 9.0]]), lo=0.0, hi=1.0)
    assert clipped[0, 0].tolist() == list(FIRST) and clipped[0, 2].tolist() == list(LAST)
    assert viz.colormap(np.full((2, 2), 7.0)).tolist() == [[list(FIRST)] * 2] * 2  # flat: no division by 0


def test_depth_image_near_dark_far_bright_missing_black():
    out = viz.depth_image(np.array([[0.0, 1.0, 5.0]]))
    assert out[0].tolist() == [[0, 0, 0], list(FIRST), list(LAST)]


def test_overlay_blends_exactly():
    rgb = np.full((2, 3, 3), (100, 200, 50), np.uint8)
    color = np.full((2, 3, 3), (200, 0, 251), np.uint8)
    assert viz.overlay(rgb, color, 0.5)[0, 0].tolist() == [150, 100, 150]  # 150.5 rounds to even
    assert viz.overlay(rgb, color, 0.25)[1, 2].tolist() == [125, 150, 100]
    np.testing.assert_array_equal(viz.overlay(rgb, color, 0.0), rgb)
    np.testing.assert_array_equal(viz.overlay(rgb, color, 1.0), color)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        viz.overlay(rgb, color, 1.5)
    with pytest.raises(ValueError, match="differ in size"):
        viz.overlay(rgb, color[:1])


# ----------------------------------------------------------------------------- panels


def test_panel_places_enlarged_tiles_under_captions():
    a = np.full((5, 6, 3), (10, 20, 30), np.uint8)
    b = np.full((3, 4, 3), (40, 50, 60), np.uint8)
    img = np.asarray(viz.panel([a, b], ["a very long caption that must be cut", "b"], scale=2, gap=4))
    assert img.shape == (14 + 10, 12 + 4 + 8, 3)
    assert (img[14:, :12] == (10, 20, 30)).all()  # tile a, 2x
    assert (img[14:20, 16:] == (40, 50, 60)).all() and (img[20:, 16:] == 255).all()  # tile b, shorter
    assert (img[:, 12:16] == 255).all()  # the gap stays white: the long caption was cut to its tile


def test_a_cut_caption_ends_in_dots():
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text = "LAFS 2: 0.5 +- 2.9e-05"
    full = draw.textlength(text, font=viz._font())
    assert viz._fit(draw, text, int(full) + 1) == text  # fits: unchanged
    cut = viz._fit(draw, text, int(full) - 4)
    assert cut.endswith("..") and text.startswith(cut[:-2]) and len(cut) < len(text) + 2
    assert draw.textlength(cut, font=viz._font()) <= int(full) - 4
    assert viz._fit(draw, text, 1) == ""  # not even the dots fit


def test_prediction_panel_tiles_and_accuracy():
    colors = viz.palette(3)
    rgb = np.full((4, 5, 3), 7, np.uint8)
    depth = np.linspace(0.5, 3.0, 20, dtype=np.float32).reshape(4, 5)
    depth[0, 0] = 0.0
    pred = np.zeros((4, 5), np.int64)
    pred[:, 3:] = 2
    truth = np.full((4, 5), 2, np.int64)
    truth[:, 0] = 255
    img = np.asarray(viz.prediction_panel(rgb, depth, pred, colors, truth=truth, name="x"))
    assert img.shape == (14 + 4, 4 * 5 + 3 * 4, 3)  # rgb | depth | prediction | ground truth
    tiles = [img[14:, k * 9:k * 9 + 5] for k in range(4)]
    assert (tiles[0] == 7).all()
    np.testing.assert_array_equal(tiles[1], viz.depth_image(depth))
    np.testing.assert_array_equal(tiles[2], viz.colorize(pred, colors))
    np.testing.assert_array_equal(tiles[3], viz.colorize(truth, colors))
    no_truth = viz.prediction_panel(rgb, depth, pred, colors, scale=2)
    assert no_truth.size == (3 * 10 + 2 * 4, 14 + 8)


def test_attention_panel_crops_padding_cells_before_scaling():
    """A 40×56 frame is padded to 64×64: a stage-2 map (stride 8) is 8×8, of which 5×7 cells are
    the frame. A huge value in the padding must not flatten the frame's own range."""
    rgb = np.zeros((40, 56, 3), np.uint8)
    m2 = np.full((8, 8), 0.4, np.float32)
    m2[2, 3] = 0.6
    m2[5:, :] = 10.0  # padding rows
    m3, m4 = np.full((4, 4), 0.5, np.float32), np.full((2, 2), 0.5, np.float32)
    img = np.asarray(viz.attention_panel(rgb, [m2, m3, m4], model_hw=(40, 56), name="f", scale=1))
    assert img.shape == (14 + 40, 4 * 56 + 3 * 4, 3)  # rgb | stage 2 | stage 3 | stage 4
    stage2 = img[14:, 60:116]
    assert (stage2[19:21, 27:29] == LAST).all()  # the 0.6 cell (row 2, column 3 of 8-pixel cells) tops the range
    assert _has(stage2, FIRST) and not _has(stage2[-8:], LAST)  # 0.4 its bottom; no padding value shown
    big = np.asarray(viz.attention_panel(rgb, [m2, m3, m4], model_hw=(40, 56), scale=2))
    assert big.shape == (14 + 80, 4 * 112 + 3 * 4, 3)


def test_legend_shows_every_class_colour():
    names = [f"class {i}" for i in range(7)]
    colors = viz.palette(7)
    img = viz.legend(names, colors)
    assert img.size == (5 * 140, 2 * 18 + 4)  # 5 per row
    assert all(_has(img, c) for c in colors)


# ----------------------------------------------------------------------------- charts


def test_charts_stack_and_save(tmp_path):
    line = viz.line_chart({"loss": ([0, 1, 2], [2.0, 1.0, float("nan")]), "b": ([0, 2], [0.5, 0.7])}, "t", "x", "y")
    assert all(_has(line, c) for c in viz.palette(2))  # one colour per series
    bar = viz.bar_chart(["a", "b"], [0.25, None], "iou", colors=[[255, 0, 0], [0, 255, 0]])
    heat = viz.heatmap(np.array([[5, 0], [1, 3]]), labels=["a", "b"], title="cm", cell=10)
    path = save_image(viz.stack([line, bar, heat]), tmp_path / "x.png")
    with Image.open(path) as im:
        assert im.size == (max(line.width, bar.width, heat.width), line.height + bar.height + heat.height + 16)
    # The 0.25 bar is red and about a quarter of the bar area wide; the None bar draws nothing green.
    red = (np.asarray(bar)[..., 0] > 200) & (np.asarray(bar)[..., 1] < 50)
    cols = np.where(red.any(0))[0]
    assert 0.2 < (cols.max() - cols.min()) / (bar.width - 210) < 0.3 and not _has(bar, (0, 255, 0))
    with pytest.raises(ValueError, match="'colors' must be 2"):
        viz.bar_chart(["a", "b"], [0.1, 0.2], colors=[[255, 0, 0]])


def test_heatmap_uses_the_ramp_row_normalised():
    img = np.asarray(viz.heatmap(np.array([[4, 0], [0, 9]]), cell=10))
    cells = img[30:50, 10:30]
    assert cells[5, 5].tolist() == list(LAST) and cells[15, 15].tolist() == list(LAST)  # diagonal: 1
    assert cells[5, 15].tolist() == list(FIRST) and cells[15, 5].tolist() == list(FIRST)  # off-diagonal: 0
