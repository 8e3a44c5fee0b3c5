"""ConvNeXt's channels-first graph form (what ONNX Runtime and OpenVINO get): exact, no permutes."""

import torch

from asymformer.models import create_model


def test_channels_first_graph_form_is_exact_and_has_no_permutes():
    """The ONNX graph form of ConvNeXt (1×1 convs on NCHW, norm by reductions) gives the eager
    logits, with or without fuse() first, and keeps a non-trivial layer scale and norm affine."""
    import copy

    from asymformer.models.convnext import ChannelLayerNorm, ConvNeXtBlock, LayerNorm2d, convnext_channels_first

    torch.manual_seed(0)
    model = create_model("asymformer_b0_a", num_classes=5).eval()
    for block in model.modules():
        if isinstance(block, ConvNeXtBlock):
            block.gamma.data.normal_(0, 0.5)
            block.norm.weight.data.normal_(1, 0.3)
            block.norm.bias.data.normal_(0, 0.3)
    rgb, depth = torch.randn(2, 3, 64, 96), torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        ref = model(rgb, depth)
        plain = convnext_channels_first(copy.deepcopy(model))
        fused = convnext_channels_first(copy.deepcopy(model).fuse())
        for m in (plain, fused):
            assert (m(rgb, depth) - ref).abs().max() < 1e-5
            blocks = [b for b in m.modules() if isinstance(b, ConvNeXtBlock)]
            assert blocks and all(isinstance(b.pwconv1, torch.nn.Conv2d) and isinstance(b.norm, ChannelLayerNorm)
                                  for b in blocks)
            assert not any(type(x) is LayerNorm2d for x in m.modules())
    assert not any(isinstance(b.pwconv1, torch.nn.Conv2d) for b in model.modules() if isinstance(b, ConvNeXtBlock))


def test_one_pass_norm_matches_layer_norm_and_exports_one_read():
    """ChannelLayerNorm(one_pass=True), the reduced-precision graphs' norm: the same numbers as
    LayerNorm on ConvNeXt-like maps (mean well inside the spread), never a negative variance even
    on a constant map, and exported graphs whose variance reads x once (ReduceL2, no Pow) only
    when asked for."""
    import onnx

    from asymformer.models.convnext import ChannelLayerNorm

    torch.manual_seed(0)
    dim = 96
    w, b = torch.randn(dim), torch.randn(dim)
    exact, fast = ChannelLayerNorm(dim, 1e-6, w, b), ChannelLayerNorm(dim, 1e-6, w, b, one_pass=True)
    x = torch.randn(2, dim, 8, 12) * 3 + torch.randn(1, dim, 1, 1)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (dim,), w, b, 1e-6).permute(0, 3, 1, 2)
    assert (exact(x) - ref).abs().max() < 1e-5
    assert (fast(x) - ref).abs().max() < 1e-4
    const = torch.full((1, dim, 4, 4), 17.7)  # E[x²] − E[x]² rounds to −3e-4 here: NaN without the clamp
    assert torch.isfinite(fast(const)).all() and (fast(const) - b.reshape(1, dim, 1, 1)).abs().max() < 0.05
    from asymformer.deploy.accel.export import remove_onnx, temp_onnx_file

    model = create_model("asymformer_b0_a", num_classes=5).eval()
    rgb, depth = torch.randn(1, 3, 64, 64), torch.randn(1, 1, 64, 64)
    counts = {}
    for one_pass in (False, True):  # what the reduced-precision engines get, and what FP32 gets
        path = temp_onnx_file(model, rgb, depth, one_pass_norms=one_pass)
        try:
            ops = [n.op_type for n in onnx.load(path).graph.node]
        finally:
            remove_onnx(path)
        counts[one_pass] = (ops.count("ReduceL2"), ops.count("Pow"))
    assert counts[False][0] == 0 and counts[True][0] > 0, counts
    assert counts[True][1] == counts[False][1] - counts[True][0], "each one-pass norm drops its Pow"
