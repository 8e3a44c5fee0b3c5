"""Weight files: official checkpoint errors, our safetensors format, ImageNet backbones, fuse()."""

import os

import numpy as np
import pytest
import torch

import asymformer
from asymformer.models import load_backbone_weights, read_model_header, read_model_info
from asymformer.models.fusion import FUSIONS


def test_wrong_class_count_names_both(official_sd):
    model = asymformer.create_model("asymformer_b0_t", num_classes=37)
    with pytest.raises(ValueError) as err:
        asymformer.load_official_state_dict(model, official_sd)
    msg = str(err.value)
    assert "40 classes" in msg and "you built 37 classes" in msg
    assert "Decoder.linear_pred.weight (40, 256, 1, 1) vs model (37, 256, 1, 1)" in msg


def test_random_dict_and_missing_file():
    model = asymformer.create_model("asymformer_b0_a", num_classes=5)
    with pytest.raises(ValueError, match="not an AsymFormer state dict") as err:
        asymformer.load_official_state_dict(model, {"foo.weight": torch.zeros(3), "bar": torch.ones(1)})
    assert "missing" in str(err.value) and "unexpected: foo.weight" in str(err.value)
    with pytest.raises(ValueError, match="contains no tensors"):
        asymformer.load_official_state_dict(model, {"epoch": 3})
    with pytest.raises(FileNotFoundError, match="checkpoint not found: /nonexistent/x.pth"):
        asymformer.load_official_state_dict(model, "/nonexistent/x.pth")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        asymformer.load_model("/nonexistent/x.safetensors")


def test_unsafe_or_garbage_files_give_one_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="could not be read as a PyTorch checkpoint with weights_only=True"):
        asymformer.load_model(bad)


def test_save_load_roundtrip_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=3, fusion="lafs").eval()
    path = tmp_path / "m.safetensors"
    info = model.info.replace(training={"epoch": 7}, train_size=(48, 64))
    asymformer.save_model(model, path, class_names=["a", "b", "c"], normalization="imagenet", info=info)
    assert os.listdir(tmp_path) == ["m.safetensors"]  # atomic: no temp file left behind
    header = read_model_header(path)
    assert header["format_version"] == 2 and header["name"] == "asymformer_b0_a"
    assert header["kwargs"] == {"fusion": "lafs"} and header["num_classes"] == 3
    loaded = asymformer.load_model(path)
    assert loaded.info == read_model_info(path) == info.replace(class_names=("a", "b", "c"), normalization="imagenet")
    assert loaded.info.class_names == ("a", "b", "c") and loaded.info.train_size == (48, 64)
    norm = loaded.info.normalization  # stored as values, with the preset name
    assert norm["name"] == "imagenet" and norm["rgb_mean"] == [0.485, 0.456, 0.406]
    assert norm["rgb_std"] == [0.229, 0.224, 0.225] and norm["depth_mean"] == pytest.approx(2.84245035)
    assert header["normalization"] == norm
    assert loaded.info.training == {"epoch": 7} and not loaded.info.fused
    rgb, depth = torch.randn(1, 3, 64, 64), torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(rgb, depth), model(rgb, depth), rtol=0, atol=0)


def test_save_rejects_fused_and_wrong_names(tmp_path):
    model = asymformer.create_model("asymformer_b0_a", num_classes=3)
    with pytest.raises(ValueError, match="2 class names given for a model with 3 classes"):
        asymformer.save_model(model, tmp_path / "x.safetensors", class_names=["a", "b"])
    with pytest.raises(ValueError, match="info says 4 classes but the model has 3"):
        asymformer.save_model(model, tmp_path / "x.safetensors", info=asymformer.create_model("asymformer_b0_a",
                                                                                               num_classes=4).info)
    with pytest.raises(ValueError, match="before model.fuse"):
        asymformer.save_model(model.fuse(), tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())  # nothing written by a refused save


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fuse_is_exact_for_every_variant(fusion):
    torch.manual_seed(1)
    model = asymformer.create_model("asymformer_b0_a", num_classes=6, fusion=fusion)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    rgb, depth = torch.randn(2, 3, 70, 100), torch.randn(2, 1, 70, 100)
    with torch.no_grad():
        eager = model(rgb, depth)
        fused = model.fuse()(rgb, depth)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (fused - eager).abs().max() <= 1e-5 * eager.abs().max()
    assert model.fuse() is model  # idempotent


def _fake(refweights, keys_file, seed=3):
    return refweights.state_dict(refweights.read_keys(keys_file), seed=seed)


def test_meta_convnext_backbone(refweights, reference_dir, tmp_path):
    sd = _fake(refweights, reference_dir / "imagenet_convnext_tiny_1k_224_ema_keys.txt")
    path = tmp_path / "convnext_tiny_1k_224_ema.pth"
    torch.save({"model": sd}, path)
    model = asymformer.create_model("asymformer_b0_t")
    report = load_backbone_weights(model, rgb=path)
    assert report == {"rgb": 178}  # all 182 tensors but the classifier norm.* / head.* (4)
    assert torch.equal(model.down_sample_3.rgb_layer[8].pwconv2.weight, sd["stages.2.8.pwconv2.weight"])
    assert torch.equal(model.down_sample_2.rgb_stem[1].weight, sd["downsample_layers.1.1.weight"])


def test_timm_convnext_backbone(refweights, reference_dir, tmp_path):
    meta = _fake(refweights, reference_dir / "imagenet_convnext_tiny_1k_224_ema_keys.txt")
    timm = {"head.fc.weight": torch.zeros(1000, 768), "head.norm.weight": torch.ones(768)}
    for k, v in meta.items():  # timm's names for the same tensors, written out by hand
        p = k.split(".")
        if p[0] == "downsample_layers":
            timm[f"stem.{p[2]}.{p[3]}" if p[1] == "0" else f"stages.{p[1]}.downsample.{p[2]}.{p[3]}"] = v
        elif p[0] == "stages":
            inner = {"dwconv": "conv_dw", "norm": "norm", "pwconv1": "mlp.fc1", "pwconv2": "mlp.fc2"}
            rest = "gamma" if p[3] == "gamma" else f"{inner[p[3]]}.{p[4]}"
            timm[f"stages.{p[1]}.blocks.{p[2]}.{rest}"] = v
    path = tmp_path / "convnext_tiny.fb_in1k.pth"
    torch.save(timm, path)
    import safetensors.torch as st

    st.save_file(timm, str(tmp_path / "model.safetensors"))  # what timm's hub releases ship
    for weights in (path, tmp_path / "model.safetensors"):
        model = asymformer.create_model("asymformer_b0_t")
        load_backbone_weights(model, rgb=weights)
        assert torch.equal(model.down_sample_1.rgb_stem[0].weight, meta["downsample_layers.0.0.weight"])
        assert torch.equal(model.down_sample_4.rgb_layer[2].gamma, meta["stages.3.2.gamma"])


def test_mit_b0_backbone_sums_stage1_kernel(refweights, reference_dir, tmp_path):
    sd = _fake(refweights, reference_dir / "segformer_mit_b0_keys.txt")
    path = tmp_path / "mit_b0.pth"
    torch.save(sd, path)
    model = asymformer.create_model("asymformer_b0_t")
    before = model.down_sample_1.rgb_stem[0].weight.clone()
    report = load_backbone_weights(model, depth=path)
    assert report["depth"] == sum(1 for k in model.state_dict() if ".depth_" in k)
    w = model.down_sample_1.depth_stem.proj.weight
    assert w.shape == (32, 1, 7, 7)
    summed = sd["patch_embed1.proj.weight"].sum(1, keepdim=True)
    np.testing.assert_allclose(w.detach().numpy(), summed.numpy(), rtol=1e-6)
    assert torch.equal(model.down_sample_4.depth_layer[1].mlp.fc2.weight, sd["block4.1.mlp.fc2.weight"])
    assert torch.equal(model.down_sample_1.rgb_stem[0].weight, before)  # RGB branch untouched


def test_backbone_mismatch_is_clear(refweights, reference_dir, tmp_path):
    sd = _fake(refweights, reference_dir / "imagenet_convnext_tiny_1k_224_ema_keys.txt")
    path = tmp_path / "convnext.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(ValueError, match="does not fit the RGB .ConvNeXt. branch of asymformer_b0_a"):
        load_backbone_weights(asymformer.create_model("asymformer_b0_a"), rgb=path)
    with pytest.raises(ValueError, match="not a SegFormer MiT checkpoint"):
        load_backbone_weights(asymformer.create_model("asymformer_b0_a"), depth=path)


def test_old_files_with_a_preset_name_still_load(tmp_path):
    """Files written before normalisation was stored as values carry only the preset name."""
    import json

    from asymformer.data.transforms import NORMALIZATIONS
    from asymformer.deploy import Segmenter
    from asymformer.models.serialization import FORMAT, save_safetensors

    model = asymformer.create_model("asymformer_b0_a", num_classes=3).eval()
    header = {"format_version": 1, "model_name": "asymformer_b0_a", "model_kwargs": {"num_classes": 3},
              "class_names": ["a", "b", "c"], "normalization": "imagenet", "metadata": {}}
    path = tmp_path / "old.safetensors"
    save_safetensors(model.state_dict(), path, {"format": FORMAT, FORMAT: json.dumps(header)})
    loaded = asymformer.load_model(path)
    assert loaded.info.normalization["name"] == "imagenet"
    seg = Segmenter(loaded, device="cpu")
    assert seg._norm["rgb_mean"] == list(NORMALIZATIONS["imagenet"]["rgb_mean"])
    asymformer.save_model(loaded, tmp_path / "new.safetensors")  # re-saving upgrades to values
    assert read_model_header(tmp_path / "new.safetensors")["normalization"]["name"] == "imagenet"
