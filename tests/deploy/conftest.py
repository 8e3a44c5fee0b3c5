"""Models and files shared by the deploy tests (asymformer_b0_a: fast on 2 CPU cores; `small_model` is
in tests/conftest.py, shared with the streaming runtime's tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


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


TRAIN_STEPS = 150
# A narrow, shallow AsymFormer (every block type, 0.6 M parameters) so training fits a test.
TINY = dict(rgb_dims=(16, 32, 64, 128), rgb_depths=(1, 1, 2, 1), depth_dims=(16, 32, 64, 128),
            depth_heads=(1, 1, 2, 4), depth_depths=(1, 1, 1, 1), decoder_dim=64)


@pytest.fixture(scope="session")
def trained_model():
    """A tiny AsymFormer trained briefly on synthetic rooms (the demo's recipe at 64×96, fixed steps).

    Reduced-precision accuracy only means something on a model with real decision margins: on
    random weights argmax flips on noise. 150 AdamW steps of batch 8 (about 20 s on one core)
    get it well above chance, deterministically.
    """
    import asymformer
    from asymformer.data import EvalTransform, SyntheticRooms

    torch.manual_seed(0)
    ds = SyntheticRooms(48, height=64, width=96, seed=3, cache=True)
    ds.transform = EvalTransform(size=(64, 96), normalization="nyuv2_official")
    samples = [ds[i] for i in range(len(ds))]
    model = asymformer.create_model("asymformer_b0_a", num_classes=ds.num_classes, **TINY)
    model.info = model.info.replace(normalization="nyuv2_official")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on 2 cores shared with other jobs ran 10x slower (measured)
    try:
        _train(model, opt, samples, g)
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _train(model, opt, samples, g):
    for _ in range(TRAIN_STEPS):
        idx = torch.randint(0, len(samples), (8,), generator=g).tolist()
        rgb = torch.stack([samples[i]["rgb"] for i in idx])
        depth = torch.stack([samples[i]["depth"] for i in idx])
        label = torch.stack([samples[i]["label"] for i in idx]).long()
        loss = torch.nn.functional.cross_entropy(model(rgb, depth), label, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="session")
def synthetic_eval_set():
    """12 held-out synthetic rooms (other seed than training), normalised, 64×96, with labels."""
    from asymformer.data import EvalTransform, SyntheticRooms

    ds = SyntheticRooms(12, height=64, width=96, seed=7)
    ds.transform = EvalTransform(size=(64, 96), normalization="nyuv2_official")
    return [ds[i] for i in range(len(ds))]


def assert_onnx_matches_torch(sess, model, b: int, h: int, w: int) -> None:
    """An ONNX Runtime session of `model` gives its logits (≤ 1e-4) at batch b, size h×w."""
    import numpy as np

    g = torch.Generator().manual_seed(b * h + w)
    rgb, depth = torch.randn(b, 3, h, w, generator=g), torch.randn(b, 1, h, w, generator=g)
    with torch.no_grad():
        ref = model(rgb, depth).numpy()
    out = sess.run(["logits"], {"rgb": rgb.numpy(), "depth": depth.numpy()})[0]
    assert out.shape == ref.shape == (b, ref.shape[1], h, w)
    assert np.abs(out - ref).max() <= 1e-4
