"""Run-time configuration shared by the package and the notebooks.

Fast mode (``FAST``) shrinks mesh resolution, image size, dataset size and iteration counts so that
every notebook runs in about a minute on two CPU cores. It is on when ``FACELIB_FAST`` is set to a
true value, and by itself whenever ``CI`` is set (as CI services do). ``FACELIB_FAST=0`` turns it
off even under CI.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _fast_from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Reads fast mode from the environment (``FACELIB_FAST`` wins over ``CI``)."""
    value = environ.get("FACELIB_FAST")
    if value is not None:
        value = value.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"FACELIB_FAST={value!r}: use 1 (fast mode) or 0 (full mode)")
    return bool(environ.get("CI"))


FAST: bool = _fast_from_env()
"""True in fast mode (small meshes, images and iteration counts for CPU and CI)."""

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DATA_DIR = Path(os.environ.get("FACELIB_DATA", REPO_DIR / "data"))
"""Files that ship with the course (photos, the built face model when it is committed)."""

PHOTOS = {"grace_hopper": DATA_DIR / "photos" / "grace_hopper.jpg", "astronaut": DATA_DIR / "photos" / "astronaut.jpg"}
"""The two public-domain photos that ship with the course (see data/README.md)."""

OUT_DIR = Path(os.environ.get("FACELIB_OUT", REPO_DIR / "out"))
"""Where the lessons and commands write what they make by default (``out/``, ignored by git); tests move it."""

CACHE_DIR = Path(os.environ.get("FACELIB_CACHE", Path.home() / ".cache" / "facelib"))
"""Files that facelib builds or downloads once per machine (face model, mesh hierarchies)."""


def pick(fast: object, full: object) -> object:
    """Returns ``fast`` in fast mode and ``full`` otherwise (for sizes and iteration counts)."""
    return fast if FAST else full


def get_device(prefer: str | torch.device | None = None, verbose: bool = True) -> torch.device:
    """Returns the device to compute on: CUDA when available, else the CPU (with a printed note).

    Args:
        prefer: an explicit device ("cpu", "cuda", "cuda:1"); ``None`` picks automatically.
            ``FACELIB_DEVICE`` in the environment takes the place of ``prefer`` when it is None.
        verbose: print a one-line note when falling back to the CPU.
    """
    prefer = prefer if prefer is not None else os.environ.get("FACELIB_DEVICE")
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {prefer!r} was asked for but CUDA is not available here "
                "(on Colab: Runtime > Change runtime type > GPU; or pass 'cpu')"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if verbose:
        print("facelib: no CUDA GPU found, computing on the CPU" + (" (fast mode)" if FAST else ""))
    return torch.device("cpu")


def find_weights(explicit: str | Path | None, env: str, bundled: Path) -> Path | None:
    """Which weights file to use: ``explicit``, else ``$env``, else ``bundled`` when it exists, else None.

    A file named explicitly (argument or environment) is returned even when it is missing: that is an
    error for its loader to report, not a reason to fall back silently to another file.
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(env):
        return Path(os.environ[env])
    return bundled if bundled.is_file() else None


@contextlib.contextmanager
def repeatable(device: torch.device) -> Iterator[None]:
    """PyTorch's deterministic algorithms while the block runs, on the CPU; the setting before is restored.

    Why: with several CPU threads, ``index_put_(accumulate=True)`` (the backward of gathering per-vertex
    values, in every fit step) adds in a varying order, and a fit of a few hundred steps amplifies
    those last-bit differences into visibly different coefficients, so the same photo would not give
    the same face twice. The deterministic CPU kernels add in a fixed order. On CUDA nothing changes:
    some of the ops used have no deterministic CUDA kernel and would raise.

    Args:
        device: the device the block computes on.
    """
    if device.type != "cpu" or torch.are_deterministic_algorithms_enabled():
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False, warn_only=warn_only)
