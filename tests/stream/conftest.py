"""The streaming runtime's tests run the deploy tests' small model (`small_model`, tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread here (the top-level conftest's `one_thread`), as in the deploy tests: on a shared
    2-core machine OpenMP barriers under contention make small models 5-10x slower."""
