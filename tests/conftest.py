"""Shared fixtures. Tests run headless and in fast mode (the Makefile sets both; so does this).

They also run with their own temporary ``FACELIB_CACHE``, never the user's: the root conftest.py sets
it up for tests/, notebooks/ and solutions/ alike (tests must not write into a user's files).
"""

import os

os.environ.setdefault("FACELIB_FAST", "1")
os.environ.setdefault("FACELIB_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def open_model():
    """The open face model at level 0 (from the session's temporary cache: seeded from the user's, or built)."""
    from facelib.morphable import load_open_model

    return load_open_model(level=0)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
