"""`labels_and_confidence` (the Segmenter's post-processing) against the plain definition
softmax(upsampled logits).max(): same labels, confidence within float rounding, ties to the first
class, NaN to class 0, the caller's logits untouched, a reused buffer giving the same answer; and
the GIL-free inference path a StreamRunner uses (a trace per input size, equal logits, eager kept
where the backend already is GIL-free, a warning and eager where tracing fails)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asymformer import Segmenter
from asymformer.deploy.postprocess import labels_and_confidence


def reference(logits, size):
    up = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False) \
        if tuple(logits.shape[2:]) != tuple(size) else logits.float()
    conf, labels = torch.softmax(up, dim=1).max(dim=1)
    return labels, conf, up


@pytest.mark.parametrize("shape,size", [((1, 40, 24, 32), (24, 32)), ((2, 40, 12, 16), (48, 64)),
                                        ((1, 5, 13, 17), (45, 71)), ((1, 300, 8, 8), (8, 8))])
def test_labels_and_confidence_match_softmax_max(shape, size):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g) * 4
    before = logits.clone()
    want_l, want_c, want_up = reference(logits, size)
    for work in (None, torch.empty(shape[0], shape[1], *size)):
        for _ in range(2):  # a reused buffer gives the same answer the second time
            labels, conf, up = labels_and_confidence(logits, size, keep_logits=True, work=work)
            assert labels.dtype == torch.int64 and conf.dtype == torch.float32
            assert torch.equal(labels, want_l)
            assert (conf - want_c).abs().max() < 3e-6  # float rounding of a sum over K classes
            assert up.dtype == logits.dtype and (up - want_up).abs().max() < 1e-5
    assert torch.equal(logits, before)  # computed in place, but never in the caller's tensor


def test_ties_go_to_the_first_class_and_nan_to_class_0():
    x = torch.zeros(1, 5, 4, 4)
    x[:, 2] = x[:, 4] = 1.0  # classes 2 and 4 tie everywhere
    x[0, :, 0, 0] = float("nan")
    labels, conf, _ = labels_and_confidence(x, (4, 4))
    assert labels[0, 0, 0] == 0 and bool((labels.flatten()[1:] == 2).all())
    assert conf[0, 1, 1] == pytest.approx(np.e / (2 * np.e + 3))


@pytest.mark.parametrize("shape,size", [((1, 40, 12, 16), (48, 64)), ((1, 5, 4, 4), (4, 4))])
def test_labels_without_confidence_are_the_same_labels(shape, size):
    """confidence=False (a node publishing labels only) skips the exp-sum: the same labels, ties to
    the first class and NaN to class 0 as before, no confidence, no write into the buffer."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 4
    x[:, 1] = x[:, 3]  # exact ties between classes 1 and 3
    x[0, :, 0, 0] = float("nan")
    x[0, 2, -1, -1] = float("inf")  # an overflowing half-precision logit: argmax's class, on both paths
    x[0, :, -1, 0] = float("-inf")
    work = torch.full((shape[0], shape[1], *size), 7.0)
    want, _, _ = labels_and_confidence(x, size)
    labels, conf, _ = labels_and_confidence(x, size, work=work, confidence=False)
    assert conf is None and torch.equal(labels, want) and labels[0, 0, 0] == 0
    if size == tuple(shape[2:]):
        assert labels[0, -1, -1] == 2 and labels[0, -1, 0] == 0
    assert bool((work == 7.0).all())


def test_reduced_precision_logits_are_upsampled_in_fp32():
    logits = (torch.randn(1, 40, 12, 16) * 3).bfloat16()
    labels, conf, _ = labels_and_confidence(logits, (48, 64))
    want_l, want_c, _ = reference(logits.float(), (48, 64))
    assert torch.equal(labels, want_l) and (conf - want_c).abs().max() < 1e-6


def test_segmenter_postprocess_reuses_one_buffer_per_thread(small_model, make_frame):
    seg = Segmenter(small_model, device="cpu")
    rgb, depth = make_frame(48, 64)
    a, b = seg(rgb, depth), seg(rgb, depth)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.labels is not b.labels and not np.shares_memory(a.confidence, b.confidence)  # results stay the caller's
    assert seg._work._local.buf.shape == (1, 5, 48, 64)
    # batches and frames over the cap allocate per call: nothing large is kept for them
    assert seg._work.get(torch.zeros(2, 5, 8, 8), (48, 64)) is None
    assert seg._work.get(torch.zeros(1, 40, 8, 8), (720, 1280)) is None


def test_gil_free_inference_is_a_trace_per_size_with_the_same_logits(small_model):
    seg = Segmenter(small_model, device="cpu")
    r, d = torch.randn(1, 3, 48, 64), torch.randn(1, 1, 48, 64)
    want = seg.infer(r, d)
    got = seg.infer(r, d, gil_free=True)
    assert (got - want).abs().max() < 1e-4
    fn = seg._gil_free_fn(r, d)
    assert fn is not seg._fn and seg._gil_free_fn(r, d) is fn  # built once for this size
    for h in (64, 96, 128, 160):  # four more sizes: at most four kept, the least recently used dropped
        seg.infer(torch.randn(1, 3, h, 64), torch.randn(1, 1, h, 64), gil_free=True)
    assert len(seg._traces) == 4 and seg._gil_free_fn(r, d) is not fn


def test_a_module_that_is_not_asymformer_is_never_traced():
    """A trace records one path through the code: a module whose branches depend on input values
    would be right on the checked frame and silently wrong on the next, so only AsymFormer is traced."""

    class Branchy(torch.nn.Module):
        num_classes = 2

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, rgb, depth):
            out = torch.cat([rgb[:, :1], -rgb[:, :1]], 1) * self.scale
            return out if depth.mean() > 0 else -out

    seg = Segmenter(Branchy(), device="cpu")
    r = torch.randn(1, 3, 32, 32)
    for sign in (1, -1):
        d = sign * torch.ones(1, 1, 32, 32)
        assert torch.equal(seg.infer(r, d, gil_free=True), seg.infer(r, d))
    assert seg._gil_free_fn(r, d) is seg._fn


def test_gil_free_keeps_a_backend_that_needs_no_trace_and_warns_when_tracing_fails(small_model, monkeypatch):
    seg = Segmenter(small_model, device="cpu", size=(48, 64), optimize=["jit"])
    r, d = torch.randn(1, 3, 48, 64), torch.randn(1, 1, 48, 64)
    assert seg.backend == "jit" and seg._gil_free_fn(r, d) is seg._fn

    from asymformer.deploy import backends

    def broken(*a, **k):
        raise RuntimeError("torch.jit.trace/freeze failed: planted")

    monkeypatch.setattr(backends, "build_backend", broken)
    seg = Segmenter(small_model, device="cpu")
    with pytest.warns(UserWarning, match="no GIL-free path.*planted.*eager"):
        got = seg.infer(r, d, gil_free=True)
    assert torch.equal(got, seg.infer(r, d))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided once per size: no warning on every frame
        seg.infer(r, d, gil_free=True)
