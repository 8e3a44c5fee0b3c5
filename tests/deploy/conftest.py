"""Small models and files shared by the deploy tests (asymformer_b0_a: fast on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def small_model():
    torch.manual_seed(0)
    import asymformer

    model = asymformer.create_model("asymformer_b0_a", num_classes=5).eval()
    # Non-trivial BN statistics, so folding BatchNorms is actually exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="session")
def checkpoint(small_model, tmp_path_factory):
    import asymformer

    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    asymformer.save_model(small_model, path, class_names=[f"c{i}" for i in range(5)],
                          normalization="nyuv2_official")
    return path


@pytest.fixture(scope="session")
def make_frame():
    return frame


def frame(h: int, w: int, seed: int = 0):
    """A random uint8 RGB frame and uint16 millimetre depth (with invalid zeros)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.integers(400, 6000, (h, w), dtype=np.uint16)
    depth[: h // 5] = 0
    return rgb, depth


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models gain nothing from 2 threads, and on a shared 2-core machine OpenMP barriers
    under contention make them 5-10× slower; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
