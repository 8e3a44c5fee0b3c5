"""A tiny model and Segmenter for the robot tests (64x96 frames, 4 classes: a run takes well under a second)."""

from __future__ import annotations

import pytest
import torch

TINY = dict(rgb_dims=(16, 32, 64, 128), rgb_depths=(1, 1, 2, 1), depth_dims=(16, 32, 64, 128),
            depth_heads=(1, 1, 2, 4), depth_depths=(1, 1, 1, 1), decoder_dim=64)
NAMES = ["wall", "floor", "chair", "table"]


@pytest.fixture(scope="session")
def tiny_model():
    import asymformer

    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=4, **TINY).eval()
    model.info = model.info.replace(class_names=NAMES)
    return model


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory):
    import asymformer

    path = tmp_path_factory.mktemp("robot_ckpt") / "tiny.safetensors"
    asymformer.save_model(tiny_model, path, class_names=NAMES, normalization="nyuv2_official")
    return path


@pytest.fixture(scope="session")
def segmenter(tiny_model):
    from asymformer.deploy.segmenter import Segmenter

    return Segmenter(tiny_model)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread here (the top-level conftest's `one_thread`)."""
