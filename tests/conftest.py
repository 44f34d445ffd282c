"""Shared fixtures. Tests run headless and in fast mode (the Makefile sets both; so does this)."""

import os

os.environ.setdefault("FACELIB_FAST", "1")
os.environ.setdefault("FACELIB_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def open_model():
    """The open face model at level 0 (built once per machine into the cache)."""
    from facelib.morphable import load_open_model

    return load_open_model(level=0)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
