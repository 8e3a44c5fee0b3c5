"""The network is the published AsymFormer: it reproduces the official model's logits."""

import numpy as np
import pytest
import torch

import asymformer


def to_2026_spelling(sd):
    """The 2026 repository's names: SCC.conv_bn.{0,1} and 4-D decoder projections, plus DDP prefix."""
    out = {}
    for k, v in sd.items():
        k = k.replace(".SCC.conv1.", ".SCC.conv_bn.0.").replace(".SCC.bn.", ".SCC.conv_bn.1.")
        if k.startswith("Decoder.linear_c") and k.endswith("proj.weight"):
            v = v[:, :, None, None]
        out["module." + k] = v
    return out


def _logits(model, inputs):
    """Logits at every 4th pixel, where the vendored official logits are."""
    with torch.no_grad():
        return model.eval()(*inputs).numpy()[:, :, ::4, ::4]


@pytest.fixture()
def official_model(official_sd):
    return asymformer.load_official_state_dict(asymformer.create_model("asymformer_b0_t", num_classes=40), official_sd)


def test_matches_official_logits_2023_keys(official_model, ref_inputs, official_logits):
    out = _logits(official_model, ref_inputs)
    assert out.shape == official_logits.shape == (1, 40, 16, 24)
    assert np.abs(out - official_logits).max() <= 1e-4


def test_matches_official_logits_2026_keys(official_sd, ref_inputs, official_logits):
    sd = to_2026_spelling(official_sd)
    assert any(".SCC.conv_bn.0." in k for k in sd) and sd["module.Decoder.linear_c1.proj.weight"].ndim == 4
    model = asymformer.load_official_state_dict(asymformer.create_model("asymformer_b0_t"), sd)
    assert np.abs(_logits(model, ref_inputs) - official_logits).max() <= 1e-4


def test_matches_official_logits_after_fuse(official_model, ref_inputs, official_logits):
    eager = _logits(official_model, ref_inputs)
    fused = _logits(official_model.fuse(), ref_inputs)
    assert official_model.info.fused and type(official_model.Decoder.merge).__name__ == "Sum"
    assert np.abs(fused - official_logits).max() <= 1e-4
    assert np.abs(fused - eager).max() <= 1e-5 * np.abs(eager).max()


def test_official_checkpoint_file_loads_with_load_model(official_sd, ref_inputs, official_logits, tmp_path):
    path = tmp_path / "ckpt_epoch_500.00.pth"
    torch.save({"global_step": 1, "epoch": 500, "state_dict": {"module." + k: v for k, v in official_sd.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "params": [0]}]}}, path)
    model = asymformer.load_model(path)
    info = model.info
    assert model.num_classes == info.num_classes == 40 and info.name == "asymformer_b0_t" and info.kwargs == {}
    assert info.normalization["name"] == "nyuv2_official" and info.source == "official checkpoint"
    assert info.class_names[:2] == ("wall", "floor") and len(info.colors) == 40 and not info.fused
    assert np.abs(_logits(model, ref_inputs) - official_logits).max() <= 1e-4
