"""Shapes, sizes, variants, training-only randomness and input validation."""

import pytest
import torch
import torch.nn.functional as F

import asymformer
from asymformer.models import count_macs, model_info
from asymformer.models.fusion import FUSIONS


def _inputs(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g), torch.randn(b, 1, h, w, generator=g)


def test_released_variant_size_and_macs():
    with torch.device("meta"):
        model = asymformer.create_model("asymformer_b0_t", num_classes=40)
    assert sum(p.numel() for p in model.parameters()) == 33_059_576
    macs = count_macs(model, 480, 640)
    assert abs(macs["total"] - 36.0) <= 0.1
    assert 40.0 < macs["total_with_attention"] < 42.0  # attention products counted on top


def _attention_macs_by_hand(h, w, padded: bool) -> int:
    """asymformer_b0_a's attention products at h×w: softmax(q kᵀ) v costs lq·lk·(e + ev) per head.

    MiT stages 1-4 (2 blocks, 1/2/5/8 heads of width 32, keys reduced by sr 8/4/2/1); CMA stages 2-4
    (2 heads, q/k width rgb_dim / 4, v width depth_dim / 4, full-resolution keys). On CPU tensors CMA
    pads both widths to the larger one (`attention_width`); the meta device counts them as they are.
    """
    total = 0
    for stage, (heads, sr, rgb_dim, depth_dim) in enumerate(((1, 8, 40, 32), (2, 4, 80, 64), (5, 2, 160, 160),
                                                              (8, 1, 320, 256))):
        n = (h // 2 ** (stage + 2)) * (w // 2 ** (stage + 2))
        total += 2 * heads * n * (n // sr ** 2) * (32 + 32)  # 2 MiT blocks
        if stage > 0:
            e, ev = rgb_dim // 4, depth_dim // 4
            total += 2 * n * n * (2 * max(e, ev) if padded else e + ev)
    return total


def test_attention_macs_equal_the_hand_count():
    # On real CPU tensors SDPA dispatches to a flash kernel torch's counter has no formula for.
    model = asymformer.create_model("asymformer_b0_a", num_classes=5)
    assert count_macs(model, 64, 96)["attention"] * 1e9 == pytest.approx(_attention_macs_by_hand(64, 96, True))
    with torch.device("meta"):
        meta = asymformer.create_model("asymformer_b0_a", num_classes=5)
    assert count_macs(meta, 64, 96)["attention"] * 1e9 == pytest.approx(_attention_macs_by_hand(64, 96, False))


def test_model_info_lists_variants():
    rows = {r["name"]: r for r in model_info(480, 640)}
    assert set(rows) == set(asymformer.list_models())
    assert rows["asymformer_b0_t"]["params"] == 33_059_576
    assert rows["asymformer_b0_a"]["gmacs"] < rows["asymformer_b0_t"]["gmacs"]


@pytest.mark.parametrize("h,w", [(100, 130), (481, 641)])
def test_odd_sizes_return_input_size(h, w):
    model = asymformer.create_model("asymformer_b0_t", num_classes=40).eval()
    with torch.no_grad():
        out = model(*_inputs(1, h, w))
    assert out.shape == (1, 40, h, w)
    assert torch.isfinite(out).all()


def test_padding_is_replicate_then_crop():
    model = asymformer.create_model("asymformer_b0_a", num_classes=7).eval()
    rgb, depth = _inputs(2, 60, 90)
    with torch.no_grad():
        out = model(rgb, depth)
        padded = model(F.pad(rgb, (0, 6, 0, 4), mode="replicate"), F.pad(depth, (0, 6, 0, 4), mode="replicate"))
    assert out.shape == (2, 7, 60, 90)
    torch.testing.assert_close(out, padded[:, :, :60, :90], rtol=0, atol=0)


def test_batch_items_are_independent_in_eval():
    model = asymformer.create_model("asymformer_b0_a", num_classes=5).eval()
    rgb, depth = _inputs(3, 64, 64)
    with torch.no_grad():
        both = model(rgb, depth)
        one = model(rgb[1:2], depth[1:2])
    torch.testing.assert_close(both[1:2], one, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_ablation_variants_forward_backward(fusion):
    model = asymformer.create_model("asymformer_b0_a", num_classes=5, fusion=fusion).train()
    rgb, depth = _inputs(2, 64, 64)
    out = model(rgb, depth)
    assert out.shape == (2, 5, 64, 64)
    out.logsumexp(1).mean().backward()
    scc = model.down_sample_2.SCC
    grads = [p.grad for p in scc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    names = {n.split(".")[0] for n, _ in scc.named_children()}
    assert ("fus_atten" in names) == (fusion in ("lafs", "lafs_cma", "se_mhsa"))
    assert ("cross_atten" in names) == (fusion in ("cma", "lafs_cma"))


def test_fusion_variants_have_table_one_parameter_counts():
    """Paper Table I (Params/M, printed truncated to 0.1 M): Cat 31.9, SE+MHSA-H2 32.6, LAFS 32.4,
    CMA-H2 32.5, LAFS+CMA 33.0."""
    table = {"cat": 31.9, "se_mhsa": 32.6, "lafs": 32.4, "cma": 32.5, "lafs_cma": 33.0}
    for fusion, millions in table.items():
        with torch.device("meta"):
            model = asymformer.create_model("asymformer_b0_t", num_classes=40, fusion=fusion)
        n = sum(p.numel() for p in model.parameters())
        assert n // 100_000 == round(millions * 10), (fusion, n)


def test_randomness_only_in_training():
    model = asymformer.create_model("asymformer_b0_a", num_classes=5)
    rgb, depth = _inputs(2, 64, 64)
    with torch.no_grad():
        model.train()
        t1, t2 = model(rgb, depth), model(rgb, depth)
        model.eval()
        e1, e2 = model(rgb, depth), model(rgb, depth)
    assert not torch.equal(t1, t2)  # drop path + attention dropout + Dropout2d
    assert torch.equal(e1, e2)
    rates = [blk.drop_path.p for s in model.stages for blk in s.rgb_layer]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert [blk.drop_path.p for s in model.stages for blk in s.depth_layer][-1] == pytest.approx(0.1)


def test_return_attention_maps():
    model = asymformer.create_model("asymformer_b0_a", num_classes=5).eval()
    with torch.no_grad():
        logits, maps = model(*_inputs(1, 64, 96), return_attention=True)
    assert [tuple(m.shape) for m in maps] == [(1, 1, 8, 12), (1, 1, 4, 6), (1, 1, 2, 3)]
    assert all(((m > 0) & (m < 1)).all() for m in maps)


@pytest.mark.parametrize("rgb_shape,depth_shape,dtype,match", [
    ((1, 4, 64, 64), (1, 1, 64, 64), torch.float32, "rgb must be B×3×H×W"),
    ((1, 3, 64, 64), (1, 3, 64, 64), torch.float32, "depth must be B×1×H×W"),
    ((1, 3, 64, 64), (1, 1, 64, 96), torch.float32, "differ in batch or size"),
    ((1, 3, 64, 64), (1, 1, 64, 64), torch.uint8, "normalised float tensors"),
    ((1, 3, 16, 64), (1, 1, 16, 64), torch.float32, "at least 32×32"),
])
def test_bad_inputs_raise_clear_errors(rgb_shape, depth_shape, dtype, match):
    model = asymformer.create_model("asymformer_b0_a", num_classes=5).eval()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(rgb_shape, dtype=dtype), torch.zeros(depth_shape, dtype=dtype))


def test_unknown_variant_and_fusion():
    with pytest.raises(ValueError, match="available: asymformer_b0_a"):
        asymformer.create_model("asymformer_b5")
    with pytest.raises(ValueError, match="fusion='sum' is not one of"):
        asymformer.create_model("asymformer_b0_a", fusion="sum")
