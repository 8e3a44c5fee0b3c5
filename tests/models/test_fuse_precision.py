"""fuse() and the attention/LAFS maths on other devices and precisions (the GPU path, checked on CPU).

A model on a GPU or in half precision must stay there when folded, LAFS must not overflow
float16, and the padded attention that keeps SDPA's fast kernels must be exact.
"""

import pytest
import torch
import torch.nn.functional as F

import asymformer
from asymformer.models import fusion as fusion_mod
from asymformer.models.convnext import ConvNeXtBlock
from asymformer.models.fusion import LAFS, attention_width


def _trained_like(model, seed=0):
    """Non-trivial BatchNorm statistics and layer scales, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if isinstance(m, ConvNeXtBlock):
                m.gamma.copy_(torch.rand(m.gamma.shape, generator=g) * 0.5 + 0.1)
    return model.eval()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fuse_on_meta_keeps_device_and_dtype(dtype):
    """The stand-in for a CUDA model: fuse() must not create any tensor on the CPU or in float32."""
    with torch.device("meta"):
        model = asymformer.create_model("asymformer_b0_a", num_classes=7).to(dtype)
    model.fuse()
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    wrong = {k: (str(t.device), t.dtype) for k, t in tensors.items()
             if t.device.type != "meta" or (t.is_floating_point() and t.dtype != dtype)}
    assert not wrong
    assert type(model.Decoder.merge).__name__ == "Sum"  # the decoder fold did happen
    assert model.Decoder.linear_c1.proj.weight.shape == (256, 32)


def test_fused_bf16_model_runs_and_agrees_with_fp32():
    torch.manual_seed(0)
    model = _trained_like(asymformer.create_model("asymformer_b0_a", num_classes=6))
    rgb, depth = torch.randn(1, 3, 64, 96), torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        ref = model(rgb, depth)
        bf = model.to(torch.bfloat16).fuse()
        out = bf(rgb.bfloat16(), depth.bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    assert all(p.dtype == torch.bfloat16 for p in bf.parameters())
    agree = (out.float().argmax(1) == ref.argmax(1)).float().mean().item()
    assert agree >= 0.9, agree
    rel = ((out.float() - ref).abs().max() / ref.abs().max()).item()
    assert rel < 0.1, rel


def test_fp16_fuse_keeps_layer_scale_that_would_underflow():
    """Untrained layer scale 1e-6 times pwconv2 flushes to zero in fp16: the scale stays separate."""
    torch.manual_seed(0)
    block = ConvNeXtBlock(40).eval()
    x = torch.randn(1, 40, 8, 8)
    with torch.no_grad():
        ref = block(x)
    state = {k: v.clone() for k, v in block.state_dict().items()}
    half = block.half()
    w_before = half.pwconv2.weight.clone()
    half.fuse()
    assert half.gamma is not None and torch.equal(half.pwconv2.weight, w_before)
    zero = (half.pwconv2.weight == 0).float().mean().item()
    assert zero < 0.01
    with torch.no_grad():
        out = half(x.half()).float()
    assert (out - ref).abs().max() < 1e-2
    # The same block in fp32 folds the scale away, exactly.
    block32 = ConvNeXtBlock(40).eval()
    block32.load_state_dict(state)
    block32.fuse()
    assert block32.gamma is None
    with torch.no_grad():
        assert (block32(x) - ref).abs().max() < 1e-6


def test_lafs_is_float16_safe_and_same_number():
    """mean_c(x*y_s)/C equals sum_c(x*y_s)/C², and the sum no longer overflows float16."""
    torch.manual_seed(0)
    lafs = LAFS(1024).eval()
    with torch.no_grad():
        lafs.fc_spatial[2].weight.fill_(0.05)  # y_s > 0: every channel adds up
        x = torch.rand(1, 1024, 6, 6) * 40 + 20
        _, m32 = lafs(x, return_map=True)
        y = x.mean(dim=(2, 3))
        y_s = lafs.fc_spatial(y).view(1, -1, 1, 1)
        old = torch.sigmoid((x.double() * y_s.double()).sum(1, keepdim=True) / 1024 ** 2)
        assert (m32.double() - old).abs().max() < 1e-6
        assert float((x * y_s).sum(1).max()) > 65504  # the old form overflows float16 here
        _, m16 = lafs.half()(x.half(), return_map=True)
    assert torch.isfinite(m16).all()
    assert (m16.float() - m32).abs().max() < 5e-3


def test_attention_widths_per_device():
    assert attention_width("cpu", 48, 16) == 48
    assert attention_width("cuda", 48, 16) == 48
    assert attention_width("cuda", 20, 16) == 24  # b0_a: head width 20 -> multiple of 8
    assert attention_width("cuda", 40, 40) == 40
    assert attention_width("meta", 20, 16) == 0  # counting MACs: the network's own widths


def test_padded_attention_is_exact(monkeypatch):
    """The CUDA padding rule (q/k/v to a multiple of 8, explicit 1/sqrt(e) scale), run on CPU."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 50, 20), torch.randn(1, 2, 50, 20)
    v = torch.randn(1, 2, 50, 16)
    ref = F.scaled_dot_product_attention(q, k, v)  # math path, unpadded
    monkeypatch.setattr(fusion_mod, "attention_width", lambda dev, e, ev: -(-max(e, ev) // 8) * 8)
    out = fusion_mod._attention(q, k, v, 0.0)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-6
    monkeypatch.setattr(fusion_mod, "attention_width", lambda dev, e, ev: 32)
    assert (fusion_mod._attention(q, k, v, 0.0) - ref).abs().max() < 1e-6
