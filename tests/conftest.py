"""Shared pytest fixtures.

Tests that need the real datasets use ``shared_root``: the data root from ``AFFECTLAB_DATA``, else
``../shared/datasets`` beside the repository; they skip with a reason when neither exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, torch.get_num_threads()))


def _shared_root() -> Path | None:
    env = os.environ.get("AFFECTLAB_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    candidate = REPO.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_root() -> Path:
    """The real data root (CI: ../shared/datasets); skips the test when absent."""
    root = _shared_root()
    if root is None:
        pytest.skip("real data root absent: set AFFECTLAB_DATA or place shared/datasets beside the repo")
    return root


def pytest_configure(config):
    """Caches and runs of the whole session (fixtures of every scope included) go under a temporary
    directory, never into the user's; CI may name a persistent cache with AFFECTLAB_TEST_CACHE."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="affectlab-tests-"))
    os.environ["AFFECTLAB_CACHE"] = os.environ.get("AFFECTLAB_TEST_CACHE") or str(base / "cache")
    os.environ["AFFECTLAB_RUNS"] = str(base / "runs")


def pytest_collection_modifyitems(config, items):
    """Run the chapter executions and the book build last: they reuse the session's dataset caches
    that the loader tests fill, and they are the slowest."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/test_book.py"))
