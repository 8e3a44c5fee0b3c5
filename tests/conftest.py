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


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (the reference material); skip with a message where it is absent."""
    if not (SHARED / "reference").is_dir():
        pytest.skip(f"shared reference material not found at {SHARED} (set ASYMFORMER_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def nyuv2_mat_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "nyuv2"
    if not (d / "splits.mat").is_file() or not (d / "classMapping40.mat").is_file():
        pytest.skip(f"real NYUv2 splits.mat / classMapping40.mat not found in {d}")
    return d
