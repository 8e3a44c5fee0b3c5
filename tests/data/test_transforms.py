"""Transforms: normalisation numbers, crop/pad/flip geometry, label and depth resampling rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from asymformer.data.transforms import (
    NORMALIZATIONS,
    EvalTransform,
    TrainTransform,
    hsv_jitter,
    normalization_values,
    normalize,
    resize_depth,
)


def _sample(h=48, w=64, seed=0):
    """An asymmetric scene shared by rgb, depth and label: a block in the top-left quadrant."""
    rng = np.random.default_rng(seed)
    label = np.full((h, w), 1, np.int64)
    label[: h // 3, : w // 4] = 2
    label[h // 2:, w // 2:] = 255  # some void
    rgb = np.full((h, w, 3), 40, np.uint8)
    rgb[label == 2] = (230, 230, 230)
    depth = rng.uniform(1.0, 3.0, (h, w)).astype(np.float32)
    depth[label == 2] = 1.0
    depth[label != 2] = 3.0
    return {"rgb": rgb, "depth": depth, "label": label, "name": "s"}


def test_normalize_matches_hand_computed_values():
    rgb = np.array([[[0, 128, 255]]], np.uint8)
    depth = np.array([[0.0]], np.float32)
    x, d = normalize(rgb, depth, "nyuv2_official")
    assert x.shape == (3, 1, 1) and d.shape == (1, 1, 1) and x.dtype == d.dtype == torch.float32
    m, s = NORMALIZATIONS["nyuv2_official"]["rgb_mean"], NORMALIZATIONS["nyuv2_official"]["rgb_std"]
    expect = [(0 / 255 - m[0]) / s[0], (128 / 255 - m[1]) / s[1], (255 / 255 - m[2]) / s[2]]
    np.testing.assert_allclose(x.flatten().numpy(), expect, atol=1e-6)
    # invalid depth 0 m is normalised like any value: (0 - 2.8424...) / 0.99328...
    assert d.item() == pytest.approx(-2.8424503515351494 / 0.9932836506164299, rel=1e-6)
    x, d = normalize(rgb, np.array([[2.0]], np.float32), "imagenet")
    assert x[0].item() == pytest.approx(-0.485 / 0.229, rel=1e-5)
    assert d.item() == pytest.approx((2.0 - 2.8424503515351494) / 0.9932836506164299, rel=1e-6)
    _, d = normalize(rgb, np.array([[0.48 + 0.28]], np.float32), "dformer")
    assert d.item() == pytest.approx(1.0, rel=1e-5)
    custom = {"rgb_mean": (0.5, 0.5, 0.5), "rgb_std": (0.5, 0.5, 0.5), "depth_mean": 1.0, "depth_std": 2.0}
    x, d = normalize(rgb, np.array([[5.0]], np.float32), custom)
    np.testing.assert_allclose(x.flatten().numpy(), [-1.0, 128 / 255 * 2 - 1, 1.0], atol=1e-6)
    assert d.item() == pytest.approx(2.0)


def test_normalize_batched_tensor_and_errors():
    rgb = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    x, d = normalize(rgb, torch.ones(2, 5, 7))
    assert x.shape == (2, 3, 5, 7) and d.shape == (2, 1, 5, 7)
    x0, _ = normalize(rgb[1].numpy(), np.ones((5, 7), np.float32))
    torch.testing.assert_close(x[1], x0)
    with pytest.raises(ValueError, match="normalization 'nyu' is unknown"):
        normalize(rgb, torch.ones(2, 5, 7), "nyu")
    with pytest.raises(ValueError, match="depth must have shape"):
        normalize(rgb, torch.ones(5, 7))


def test_normalization_values_one_accessor_for_presets_and_dicts():
    """JSON-ready copies (never the preset table itself), the name kept, and one error per bad input."""
    vals = normalization_values("imagenet")
    assert vals == {"rgb_mean": [0.485, 0.456, 0.406], "rgb_std": [0.229, 0.224, 0.225],
                    "depth_mean": 2.8424503515351494, "depth_std": 0.9932836506164299, "name": "imagenet"}
    vals["rgb_mean"][0] = 9.0
    assert NORMALIZATIONS["imagenet"]["rgb_mean"][0] == 0.485
    # the stored values (what a checkpoint header holds) normalise exactly like the preset name
    rgb, depth = np.array([[[10, 128, 250]]], np.uint8), np.array([[1.7]], np.float32)
    stored = normalization_values("dformer")
    for a, b in zip(normalize(rgb, depth, "dformer"), normalize(rgb, depth, stored)):
        assert torch.equal(a, b)
    custom = {"rgb_mean": np.array([0.1, 0.2, 0.3]), "rgb_std": (1, 1, 1), "depth_mean": 0, "depth_std": 2}
    assert normalization_values(custom) == {"rgb_mean": [0.1, 0.2, 0.3], "rgb_std": [1.0, 1.0, 1.0],
                                            "depth_mean": 0.0, "depth_std": 2.0}
    with pytest.raises(ValueError, match="3 rgb means, 3 positive rgb stds"):
        normalization_values({**custom, "rgb_std": (1, 0, 1)})
    with pytest.raises(ValueError, match="preset name .* or a dict with keys rgb_mean, rgb_std"):
        normalization_values({"rgb_mean": (0, 0, 0)})


def test_train_crop_sizes_label_values_and_padding():
    s = _sample(48, 64)
    t = TrainTransform(crop_size=(40, 56), base_size=None, scale_range=(1.0, 2.0))
    for i in range(5):
        out = t(s, np.random.default_rng(i))
        assert out["rgb"].shape == (3, 40, 56) and out["depth"].shape == (1, 40, 56)
        assert out["label"].shape == (40, 56) and out["label"].dtype == torch.int64
        assert set(out["label"].unique().tolist()) <= {1, 2, 255}
    # a crop larger than the scaled image pads: label 255, depth 0 (-> normalised 0 m), rgb 0
    t = TrainTransform(crop_size=(80, 100), base_size=(48, 64), scale_range=(1.0, 1.0), hsv=False, flip=False)
    out = t(s, np.random.default_rng(0))
    lab = out["label"].numpy()
    assert (lab == 255).sum() == 80 * 100 - 48 * 64 + (s["label"] == 255).sum()
    pad = (lab == 255) & (out["depth"][0].numpy() < -2.8)
    assert pad.sum() == 80 * 100 - 48 * 64
    zero_rgb = normalize(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.float32))[0][:, 0, 0]
    assert torch.allclose(out["rgb"][:, torch.from_numpy(pad)], zero_rgb[:, None])


def _coordinate_sample(h=48, w=64):
    """Each modality encodes where its pixels come from: rgb R = 4x, G = 5y (B constant), depth
    1 + 0.05x metres (linear, so bilinear resampling keeps it exact), label = x band (8 px wide)
    + 8 × y band (12 px high)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([4 * x, 5 * y, np.full_like(x, 128)], -1).astype(np.uint8)
    depth = (1.0 + 0.05 * x).astype(np.float32)
    label = (x // 8 + 8 * (y // 12)).astype(np.int64)
    return {"rgb": rgb, "depth": depth, "label": label, "name": "xy"}


IDENTITY = {"rgb_mean": (0, 0, 0), "rgb_std": (1 / 255, 1 / 255, 1 / 255), "depth_mean": 0.0, "depth_std": 1.0}


def test_scale_crop_flip_keep_rgb_depth_label_aligned():
    """Scale 1.5 (48×64 -> 72×96), a 40×56 crop at a random non-zero offset, a random flip: the
    three outputs equal "resize the whole image, crop, mirror" of each input, and at every pixel
    the coordinates read from rgb, depth and label agree."""
    s = _coordinate_sample()
    t = TrainTransform(crop_size=(40, 56), base_size=None, scale_range=(1.5, 1.5), hsv=False, flip=True,
                       normalization=IDENTITY)
    big_label = np.asarray(Image.fromarray(s["label"].astype(np.uint8)).resize((96, 72), Image.NEAREST))
    big_rgb = np.asarray(Image.fromarray(s["rgb"]).resize((96, 72), Image.BILINEAR)).astype(np.float32)
    big_depth = np.asarray(Image.fromarray(s["depth"]).resize((96, 72), Image.BILINEAR))
    seen = set()
    for seed in range(8):
        out = t(s, np.random.default_rng(seed))
        rgb, depth, label = out["rgb"].numpy(), out["depth"][0].numpy(), out["label"].numpy()
        assert rgb.shape == (3, 40, 56) and label.shape == depth.shape == (40, 56)
        x_rgb, y_rgb, x_depth = rgb[0] / 4, rgb[1] / 5, (depth - 1.0) / 0.05
        # one geometry for all three: rgb and depth name the same source column, and the label's
        # bands are those of the nearest source pixel of that column / row
        np.testing.assert_allclose(x_rgb, x_depth, atol=0.15)
        np.testing.assert_array_equal(label % 8, np.floor((x_depth + 0.5) / 8))
        np.testing.assert_array_equal(label // 8, np.floor((y_rgb + 0.5) / 12))
        assert (rgb[2] == 128).all()  # no padding, no colour change
        # recover the crop offset in the 72×96 image from the middle pixel (sub-pixel source
        # coordinate -> scaled coordinate), and the flip from the direction x runs in
        flipped = bool(x_depth[0, -1] < x_depth[0, 0])
        np.testing.assert_allclose(np.diff(x_depth[20, 1:-1]), (-1 if flipped else 1) / 1.5, atol=1e-3)
        np.testing.assert_allclose(np.diff(y_rgb[1:-1, 20]), 1 / 1.5, atol=0.25)  # 8-bit green: ±0.1 px each
        ox = (x_depth[20, 28] + 0.5) * 1.5 - 0.5 - (55 - 28 if flipped else 28)
        oy = (y_rgb[20, 28] + 0.5) * 1.5 - 0.5 - 20
        assert abs(ox - round(ox)) < 1e-3 and abs(oy - round(oy)) < 0.2
        ox, oy = round(ox), round(oy)
        assert 0 <= ox <= 96 - 56 and 0 <= oy <= 72 - 40
        window = (slice(oy, oy + 40), slice(ox, ox + 56))
        want_label, want_rgb, want_depth = big_label[window], big_rgb[window], big_depth[window]
        if flipped:
            want_label, want_rgb, want_depth = want_label[:, ::-1], want_rgb[:, ::-1], want_depth[:, ::-1]
        np.testing.assert_array_equal(label, want_label)
        np.testing.assert_allclose(rgb, want_rgb.transpose(2, 0, 1), atol=1.0)  # PIL 8-bit rounding
        np.testing.assert_allclose(depth, want_depth, atol=1e-5)
        seen.add((flipped, ox > 0 and oy > 0))
    assert {(True, True), (False, True)} <= seen  # both flip states, with crops away from the origin


def test_reproducible_for_same_rng_and_different_otherwise():
    s = _sample(48, 64)
    t = TrainTransform(crop_size=(32, 40), base_size=None)
    a, b = t(s, np.random.default_rng((0, 1, 2))), t(s, np.random.default_rng((0, 1, 2)))
    c = t(s, np.random.default_rng((0, 1, 3)))
    assert all(torch.equal(a[k], b[k]) for k in ("rgb", "depth", "label"))
    assert not torch.equal(a["rgb"], c["rgb"])


def test_depth_resize_never_blends_with_invalid():
    rng = np.random.default_rng(0)
    depth = rng.uniform(2.0, 4.0, (30, 40)).astype(np.float32)
    depth[:, :17] = 0.0
    depth[rng.random((30, 40)) < 0.1] = 0.0
    for size in ((75, 101), (13, 17), (30, 40)):
        out = resize_depth(depth, size)
        valid = out[out > 0]
        assert valid.min() >= 2.0 - 1e-4 and valid.max() <= 4.0 + 1e-4
        assert 0.3 < (out == 0).mean() < 0.7
    s = {"rgb": np.zeros((30, 40, 3), np.uint8), "depth": depth, "label": np.zeros((30, 40), np.int64)}
    t = TrainTransform(crop_size=(30, 40), base_size=None, hsv=False, normalization=
                       {"rgb_mean": (0, 0, 0), "rgb_std": (1, 1, 1), "depth_mean": 0.0, "depth_std": 1.0})
    for i in range(4):
        d = t(s, np.random.default_rng(i))["depth"].numpy()
        assert d[d > 0].min() >= 2.0 - 1e-4


def test_hsv_jitter_identity_and_effect():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    same = hsv_jitter(rgb, 1.0, 1.0, 0.0).astype(int)
    assert np.abs(same - rgb).mean() < 1.0 and np.abs(same - rgb).max() <= 8
    brighter = hsv_jitter(rgb, 1.0, 1.0, 25.0).astype(int)
    assert 15 < (brighter.max(-1) - rgb.max(-1)).mean() <= 25
    grey = np.full((4, 4, 3), 100, np.uint8)
    assert (hsv_jitter(grey, 1.1, 1.1, -20.0) == 80).all()  # no saturation: hue/sat do nothing


def test_eval_transform_sizes_and_nearest_labels():
    s = _sample(48, 64)
    out = EvalTransform(size=(24, 32))(s)
    assert out["rgb"].shape == (3, 24, 32) and out["label"].shape == (24, 32)
    assert set(out["label"].unique().tolist()) <= {1, 2, 255}
    out = EvalTransform(size=(24, 32), keep_label=True)(s)
    assert out["label"].shape == (48, 64)
    assert EvalTransform(size=None)(s)["rgb"].shape == (3, 48, 64)
    with pytest.raises(ValueError, match="crop_size"):
        TrainTransform(crop_size=(0, 5))
    with pytest.raises(ValueError, match="rgb must be uint8"):
        EvalTransform()({"rgb": np.zeros((4, 4, 3), np.float32), "depth": np.zeros((4, 4)),
                         "label": np.zeros((4, 4), np.int64), "name": "bad"})
