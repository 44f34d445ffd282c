"""Colab set-up: facelib's extra packages without replacing the runtime's torch."""

from __future__ import annotations

import subprocess
import sys

import torch

NO_DEPS = ("facenet-pytorch==2.6.0", "anny==0.6.2", "face-recognition-models==0.3.0")
"""Installed with --no-deps (see requirements-nodeps.txt); face-recognition-models holds dlib's
pretrained face-recognition network (CC0 data, about 100 MB), facelib's offline identity network."""
EXTRAS = ("fast-simplification==0.2.0",)
"""facelib dependencies that Colab's image lacks (its numpy-only wheel is safe to install with deps)."""
PYTORCH3D = "easypytorch3d==0.7.9.post1"
# easypytorch3d's compiled extension was measured to load with these torch releases (CUDA 13).
PYTORCH3D_TORCH = ("2.11.", "2.12.")


def colab_setup() -> None:
    """Installs facenet-pytorch, anny and face-recognition-models with --no-deps, and PyTorch3D where the runtime's torch
    matches its build; otherwise says that the plain-torch renderer is used."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["--no-deps", *NO_DEPS], check=True)
    subprocess.run(pip + list(EXTRAS), check=True)
    if torch.__version__.startswith(PYTORCH3D_TORCH):
        subprocess.run(pip + ["--no-deps", PYTORCH3D, "iopath"], check=False)
    else:
        print(f"torch {torch.__version__}: no PyTorch3D build for it; facelib uses its plain-torch renderer (the default anyway)")
