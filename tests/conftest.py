"""Shared test fixtures. Tests run on CPU, at small sizes, without the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASYMFORMER_SHARED", REPO.parent / "shared"))


def pytest_configure(config):
    # Two cores here; keep torch from oversubscribing when pytest runs beside other work.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _restore_threads():
    """CLI commands apply --threads to the whole process (asymformer.devices.set_threads): keep one
    test's thread count from leaking into the next."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread for a test module that opts in (`pytestmark = usefixtures("one_thread")`): on
    the shared 2-core test machine 2 threads collapse under load (benchmarks/RESULTS.md); the thread
    count is restored afterwards by _restore_threads."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_model():
    """asymformer_b0_a, 5 classes, for the deploy and streaming tests (fast on 2 CPU cores)."""
    torch.manual_seed(0)
    import asymformer

    model = asymformer.create_model("asymformer_b0_a", num_classes=5).eval()
    # Non-trivial BN statistics, so folding BatchNorms is actually exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


REFERENCE = REPO / "tests" / "fixtures" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Vendored reference material (weight generator, key lists, official logits): see its README."""
    return REFERENCE


@pytest.fixture(scope="session")
def refweights(reference_dir):
    """The numpy-only reference weight generator."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("refweights", reference_dir / "refweights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def official_sd(refweights, reference_dir):
    keys = refweights.read_keys(reference_dir / "official_state_dict_keys_nyu40.txt")
    return refweights.state_dict(keys, seed=1)


@pytest.fixture(scope="session")
def official_logits(reference_dir):
    """The official model's logits at every 4th pixel (compare `ours[..., ::4, ::4]`)."""
    import numpy as np

    return np.load(reference_dir / "official_logits_nyu40_64x96_seed1_stride4.npy")


@pytest.fixture(scope="session")
def ref_inputs(refweights):
    return refweights.inputs(64, 96, seed=1)


@pytest.fixture(scope="session")
def shared_dir_or_none() -> Path | None:
    """../shared where it exists (CI), else None: tests about the exact NYUv2 files check them
    there and check the structure recorded from them (tests/fixtures) everywhere."""
    return SHARED if SHARED.is_dir() else None


@pytest.fixture(scope="session")
def nyuv2_mat_dir(tmp_path_factory) -> Path:
    """splits.mat and classMapping40.mat fabricated with the real files' structure (MATLAB v5,
    same variables, dtypes and shapes; 795 train / 654 test frames, test first = 1, train first
    = 3; 894 raw classes with "floor" -> 40-class value 2), so preparation tests run anywhere.
    test_classes.py pins that structure to the real files where they are present."""
    import numpy as np
    import scipy.io

    from asymformer.data.classes import NYU40_CLASSES

    d = tmp_path_factory.mktemp("nyuv2_mat")
    rng = np.random.default_rng(40)
    rest = rng.permutation(np.arange(9, 1450))  # like the real file: test starts 1, 2; train 3..8
    test = np.sort(np.concatenate([[1, 2], rest[:652]]))
    train = np.sort(np.concatenate([np.arange(3, 9), rest[652:]]))
    scipy.io.savemat(d / "splits.mat", {"trainNdxs": train.astype(np.uint16)[:, None],
                                        "testNdxs": test.astype(np.uint16)[:, None]})
    raw = [f"object{i}" for i in range(894)]
    raw[10] = "floor"
    map_class = rng.integers(1, 41, 894).astype(np.uint8)
    map_class[10] = 2
    names = np.empty((1, 40), dtype=object)
    names[0, :] = [n.replace("refrigerator", "refridgerator") for n in NYU40_CLASSES]
    all_names = np.empty((1, 894), dtype=object)
    all_names[0, :] = raw
    scipy.io.savemat(d / "classMapping40.mat", {"className": names, "mapClass": map_class[None],
                                                "allClassName": all_names})
    return d
