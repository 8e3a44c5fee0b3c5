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
