"""TextureGCN weights files and the mesh hierarchies they are trained on.

A weights file is a plain dict (``format``, ``config``, ``num_vertices``, ``state_dict``, ``meta``)
read with ``torch.load(weights_only=True)``; :func:`load_texture_gcn` checks that it fits the mesh.
:func:`find_texture_weights` says which file ``reconstruct`` uses (an explicit path, else
``FACELIB_TEXTURE_WEIGHTS``, else the bundled ``data/weights/texture_gcn.pt``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from facelib import config as settings
from facelib.files import atomic_save
from facelib.gcn.texture import TextureGCN, TextureGCNConfig
from facelib.mesh.hierarchy import MeshHierarchy

if TYPE_CHECKING:  # gcn sits below morphable: the model is only read (its mean shape and triangles)
    from facelib.morphable.model import MorphableModel

WEIGHTS_FORMAT = "facelib.TextureGCN/1"
"""The ``format`` entry of weights files written by :func:`save_texture_gcn` (facelib's scheme: every file it
saves with torch says ``"facelib.<kind>/<version>"``, and its loader names what it found)."""

HIERARCHY_STEPS = 4
"""Levels below the face mesh (4 steps = 5 levels, as both TextureGCN presets assume)."""

TEXTURE_WEIGHTS_ENV = "FACELIB_TEXTURE_WEIGHTS"
"""An environment variable naming TextureGCN weights to use instead of the bundled ones."""


def bundled_texture_weights() -> Path:
    """The dataset-trained "fidelity" TextureGCN that ships with the course: ``DATA_DIR/weights/texture_gcn.pt``."""
    return settings.DATA_DIR / "weights" / "texture_gcn.pt"


def find_texture_weights(weights: str | Path | None = None) -> Path | None:
    """The TextureGCN weights ``reconstruct`` uses: ``weights``, else ``FACELIB_TEXTURE_WEIGHTS``, else the
    bundled file when it exists; None when there are none (the caller announces per-image optimisation).

    A path given explicitly (argument or environment) is returned even when it is missing: that is an
    error for :func:`load_texture_gcn` to report, not a reason to fall back silently.
    """
    return settings.find_weights(weights, TEXTURE_WEIGHTS_ENV, bundled_texture_weights())


class TextureWeightsError(ValueError):
    """A TextureGCN checkpoint cannot be used (missing, unreadable, or for another mesh); the message says why."""


# ---- hierarchies ---------------------------------------------------------------------------------
def texture_hierarchy(coarse: MorphableModel, levels: int = 0) -> MeshHierarchy:
    """The five-level mesh hierarchy for a TextureGCN on ``coarse.subdivided(levels)``.

    Args:
        coarse: the model before subdivision (its mean shape and triangles).
        levels: how often the face mesh is subdivided (0: the model's own mesh).

    Returns:
        ``levels`` exact subdivision steps then quadric steps by 4, 5 levels in all (for the open
        model: level 0 gives 3,141 -> 786 -> 197 -> 50 -> 14 vertices; level 1 12,414 -> 3,141 -> ...).
        Cached on disk, so the second call costs nothing.
    """
    if not 0 <= levels <= HIERARCHY_STEPS:
        raise ValueError(f"levels must be in [0, {HIERARCHY_STEPS}], got {levels}")
    factors = (4.0,) * (HIERARCHY_STEPS - levels)
    if levels == 0:
        return MeshHierarchy.build(coarse.mean_shape, coarse.triangles, factors)
    return MeshHierarchy.from_subdivision(coarse.mean_shape, coarse.triangles, levels, factors)


# ---- checkpoints ---------------------------------------------------------------------------------
def save_texture_gcn(path: str | Path, network: TextureGCN, half: bool = False, **meta: int | float | str) -> Path:
    """Writes a TextureGCN checkpoint that :func:`load_texture_gcn` (and so :func:`refine`) reads.

    The file is a plain dict of tensors, strings and numbers (readable with ``weights_only=True``):
    ``format``, ``config`` (the :class:`TextureGCNConfig` fields), ``num_vertices`` (of the face mesh
    it was trained on), ``state_dict`` and any ``meta`` (epochs, data set, the identity network ...).
    ``half`` stores the weights in fp16 (half the size; loading casts them back to fp32).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": WEIGHTS_FORMAT, "config": dataclasses.asdict(network.config), "num_vertices": network.num_vertices,
               "state_dict": {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
                              for k, v in network.state_dict().items()}, "meta": dict(meta)}
    return atomic_save(payload, path)


def load_texture_gcn(path: str | Path, hierarchy: MeshHierarchy, config: str | TextureGCNConfig = "paper") -> TextureGCN:
    """Loads dataset-trained TextureGCN weights for a mesh hierarchy (``torch.load(weights_only=True)``).

    Args:
        path: a checkpoint from :func:`save_texture_gcn`, or a bare ``state_dict`` of a TextureGCN.
        hierarchy: the hierarchy of the mesh the albedo lives on (it must be the one trained on).
        config: the architecture of a bare state dict (checkpoints carry their own).

    Raises:
        TextureWeightsError: a missing or unreadable file, a checkpoint for another mesh or architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise TextureWeightsError(f"TextureGCN weights {path}: no such file (train them, or leave the path out "
                                  "to optimise the network on the photo itself)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated zip files, non-tensor payloads
        raise TextureWeightsError(f"cannot read TextureGCN weights from {path} ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict):
        raise TextureWeightsError(f"{path} holds a {type(payload).__name__}, not a TextureGCN checkpoint or state dict")
    meta: dict = {}
    if "state_dict" in payload:
        state = payload["state_dict"]
        meta = dict(payload.get("meta") or {})
        fields = payload.get("config")
        if isinstance(fields, dict):
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
            config = TextureGCNConfig(**fields)
        trained_on = payload.get("num_vertices")
        if trained_on is not None and int(trained_on) != hierarchy.num_vertices[0]:
            raise TextureWeightsError(f"{path} was trained on a mesh of {int(trained_on):,} vertices, but this face mesh has "
                                      f"{hierarchy.num_vertices[0]:,}: use the mesh level it was trained on (--level)")
    else:
        state = payload
    network = TextureGCN(hierarchy, config)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:  # missing keys or size mismatches
        first = str(err).strip().splitlines()
        raise TextureWeightsError(f"{path} does not fit a {network.config.name} TextureGCN on this mesh "
                                  f"({hierarchy.num_vertices[0]:,} vertices): {' '.join(first[:2])}") from err
    network.meta = meta  # what it was trained with (identity network, recipe, scores), for checks and summaries
    return network.eval()
