"""Multi-scale + flip evaluation against a hand computation in numpy.

The stub network is per-pixel in its inputs plus a left-to-right ramp over its own input width,
so it is NOT mirror-symmetric: a flipped pass that is not flipped back, or an input of which only
rgb (not depth) is flipped, changes the numbers. Resampling is recomputed with np.interp from
PyTorch's documented sampling positions (align_corners True / False, nearest), not by calling
F.interpolate, so the reference does not share the code under test.
"""

from __future__ import annotations

import numpy as np
import torch

from asymformer.engine.evaluate import evaluate_model, predict_logits
from asymformer.engine.metrics import ConfusionMatrix

MIX = np.array([[1.0, -0.5, 0.2, 0.7], [-0.3, 0.9, 0.1, -0.8], [0.4, 0.3, -1.1, 0.5]], np.float32)
RAMP = np.array([1.5, -2.0, 0.5], np.float32)  # per class, times x / (W - 1)


class Stub(torch.nn.Module):
    """logits[k] = MIX[k] · (r, g, b, depth) + RAMP[k] · x / (W - 1): 3 classes."""

    def forward(self, rgb, depth):
        x = torch.cat([rgb, depth], 1)
        w = x.shape[-1]
        ramp = torch.linspace(0, 1, w).view(1, 1, 1, w)
        return torch.einsum("kc,bchw->bkhw", torch.from_numpy(MIX), x) + torch.from_numpy(RAMP).view(1, 3, 1, 1) * ramp


def stub_np(rgb, depth):
    x = np.concatenate([rgb, depth], 1).astype(np.float64)
    w = x.shape[-1]
    return np.einsum("kc,bchw->bkhw", MIX, x) + RAMP[None, :, None, None] * (np.arange(w) / (w - 1))


def _positions(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
    j = np.arange(n_out, dtype=np.float64)
    if align_corners:
        return j * (n_in - 1) / (n_out - 1)
    return np.maximum((j + 0.5) * n_in / n_out - 0.5, 0.0)  # np.interp clamps the far edge itself


def bilinear(a: np.ndarray, size, align_corners: bool) -> np.ndarray:
    """Separable linear interpolation over the last two axes at PyTorch's sampling positions."""
    for axis, n_out in ((-2, size[0]), (-1, size[1])):
        n_in = a.shape[axis]
        pos = _positions(n_in, n_out, align_corners)
        a = np.apply_along_axis(lambda v, p=pos, n=n_in: np.interp(p, np.arange(n), v), axis, a)
    return a


def nearest(a: np.ndarray, size) -> np.ndarray:
    rows = np.floor(np.arange(size[0]) * a.shape[-2] / size[0]).astype(int)
    cols = np.floor(np.arange(size[1]) * a.shape[-1] / size[1]).astype(int)
    return a[..., rows, :][..., cols]


def expected_logits(rgb, depth, out_size, scales, flip):
    """The protocol by hand: per scale resize the input (rgb bilinear, depth nearest), run, mirror
    the input for the flipped pass and mirror its logits back, resize the logits to the input size
    with align_corners=True, add up; finally resize the sum to the label size."""
    h, w = rgb.shape[-2:]
    total = 0.0
    for s in scales:
        size = (max(32, round(h * s)), max(32, round(w * s)))
        r = rgb if size == (h, w) else bilinear(rgb, size, align_corners=False)
        d = depth if size == (h, w) else nearest(depth, size)
        for mirrored in ((False, True) if flip else (False,)):
            if mirrored:
                logits = stub_np(r[..., ::-1], d[..., ::-1])[..., ::-1]
            else:
                logits = stub_np(r, d)
            total = total + (logits if size == (h, w) else bilinear(logits, (h, w), align_corners=True))
    return total if tuple(out_size) == (h, w) else bilinear(total, out_size, align_corners=False)


def _inputs(h=32, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, h, w, generator=g), torch.randn(2, 1, h, w, generator=g)


def test_stub_reference_matches_the_stub():
    rgb, depth = _inputs()
    np.testing.assert_allclose(Stub()(rgb, depth).numpy(), stub_np(rgb.numpy(), depth.numpy()), atol=1e-5)


def test_numpy_resampling_matches_torch_on_a_random_map():
    """Pins the reference's sampling positions (so a wrong reference cannot pass by accident)."""
    a = torch.randn(1, 2, 7, 9, generator=torch.Generator().manual_seed(3))
    F = torch.nn.functional
    for size in ((11, 13), (4, 5)):
        for ac in (True, False):
            np.testing.assert_allclose(bilinear(a.numpy(), size, ac),
                                       F.interpolate(a, size, mode="bilinear", align_corners=ac).numpy(), atol=1e-5)
        np.testing.assert_array_equal(nearest(a.numpy(), size), F.interpolate(a, size, mode="nearest").numpy())


def test_multiscale_flip_logits_equal_the_hand_computation():
    rgb, depth = _inputs(32, 40)
    for scales, flip, out_size in (((1.0,), True, (32, 40)), ((1.0, 1.5), True, (32, 40)),
                                   ((0.75, 1.0, 1.25), True, (45, 50)), ((1.0, 1.5), False, (32, 40))):
        got = predict_logits(Stub(), rgb, depth, out_size, scales=scales, flip=flip)
        want = expected_logits(rgb.numpy(), depth.numpy(), out_size, scales, flip)
        assert got.shape == (2, 3, *out_size)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, err_msg=f"scales={scales} flip={flip}")
    # the flipped passes matter here: a mirror-symmetric model would make flip untestable
    with_flip = expected_logits(rgb.numpy(), depth.numpy(), (32, 40), (1.0,), True)
    unflipped = stub_np(rgb.numpy(), depth.numpy()) + stub_np(rgb.numpy()[..., ::-1], depth.numpy()[..., ::-1])
    assert np.abs(with_flip - unflipped).max() > 0.5


def test_evaluate_model_scores_the_argmax_of_the_hand_computed_sum():
    rgb, depth = _inputs(32, 40, seed=1)
    label_size = (36, 44)  # labels at another size: the summed logits are resized to them
    label = torch.randint(0, 3, (2, *label_size), generator=torch.Generator().manual_seed(2))
    label[:, :3] = 255  # void rows are not scored
    loader = [{"rgb": rgb[:1], "depth": depth[:1], "label": label[:1]},
              {"rgb": rgb[1:], "depth": depth[1:], "label": label[1:]}]
    cm = evaluate_model(Stub(), loader, 3, "cpu", scales=(1.0, 1.25), flip=True, progress=False)
    pred = expected_logits(rgb.numpy(), depth.numpy(), label_size, (1.0, 1.25), True).argmax(1)
    want = ConfusionMatrix(3)
    want.update(torch.from_numpy(pred), label)
    assert torch.equal(cm.mat, want.mat) and int(cm.mat.sum()) == 2 * 33 * 44
