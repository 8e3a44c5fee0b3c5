import importlib.util

import numpy as np
import pytest


@pytest.fixture(scope="session")
def refweights(shared_dir):
    """The numpy-only reference weight generator from ../shared/reference."""
    spec = importlib.util.spec_from_file_location("refweights", shared_dir / "reference" / "refweights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def official_sd(refweights, shared_dir):
    keys = refweights.read_keys(shared_dir / "reference" / "official_state_dict_keys_nyu40.txt")
    return refweights.state_dict(keys, seed=1)


@pytest.fixture(scope="session")
def official_logits(shared_dir):
    return np.load(shared_dir / "reference" / "official_logits_nyu40_64x96_seed1.npy")


@pytest.fixture(scope="session")
def ref_inputs(refweights):
    return refweights.inputs(64, 96, seed=1)
