"""Training checkpoints: written atomically, read safely, the last k kept.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that it loads with
``torch.load(weights_only=True)`` (a checkpoint file can never run code). The trainer puts in it
the GCN and critic weights, both optimisers, the AMP scalers, the step, the configuration (plain
types), the RNG states and the CSV log position (:mod:`facelib.train.state` lists it all); this
module adds ``format`` and checks it on load.

Atomic writes (:func:`facelib.files.atomic_save`, as every file facelib saves): a crash mid-write
leaves every finished checkpoint intact.

Files are ``step-00001234.pt`` in the checkpoint folder; the latest is the one with the highest
step (found by listing, so there is no "latest" pointer that could disagree with the files).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from facelib.files import atomic_save
from facelib.gcn.weights import WEIGHTS_FORMAT

CHECKPOINT_FORMAT = "facelib.train/1"
"""The ``format`` entry of training checkpoints (a TextureGCN-only file has refine's own format)."""

_NAME = re.compile(r"^step-(\d{8,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (damaged, truncated, not a facelib training checkpoint); the message says which and why."""


def checkpoint_name(step: int) -> str:
    """``step-00001234.pt``: zero-padded so that names sort like steps."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"step-{step:08d}.pt"


atomic_save = atomic_save  # re-exported: checkpoints are written by facelib.files.atomic_save


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a training checkpoint with ``torch.load(weights_only=True)`` and checks its format.

    Raises:
        CheckpointError: a missing, truncated or damaged file, a payload that is not plain data,
            or a file that is not a facelib training checkpoint (e.g. TextureGCN weights alone).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle of code objects, random bytes
        raise CheckpointError(f"checkpoint {path} is damaged or not plain tensor data ({type(err).__name__}: {err}); "
                              "delete it to resume from the one before") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        hint = " (TextureGCN weights alone: load them with facelib.gcn.weights.load_texture_gcn)" if found == WEIGHTS_FORMAT else ""
        raise CheckpointError(f"{path} is not a facelib training checkpoint: format {found!r}, expected {CHECKPOINT_FORMAT!r}{hint}")
    missing = {"step", "gcn", "config"} - set(payload)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}: it was written by another version or is incomplete")
    return payload


class CheckpointManager:
    """The checkpoints of one run in one folder: save (atomically), find the latest, keep the last k.

    Args:
        folder: where ``step-XXXXXXXX.pt`` files go.
        keep: how many of the newest checkpoints to keep (older ones are deleted after each save).

    Example:
        >>> manager = CheckpointManager("runs/x/checkpoints", keep=3)
        >>> manager.save(100, {"gcn": net.state_dict(), "config": {...}})
        >>> payload = manager.load_latest()      # None when there is none
    """

    def __init__(self, folder: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.folder, self.keep = Path(folder), keep

    def steps(self) -> list[int]:
        """The steps of the checkpoints in the folder, ascending (``.tmp`` leftovers do not count)."""
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name)))

    def path(self, step: int) -> Path:
        return self.folder / checkpoint_name(step)

    def latest(self) -> Path | None:
        """The checkpoint with the highest step, or None."""
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        """Writes ``payload`` (``format`` and ``step`` are added) as the checkpoint of ``step``, then prunes."""
        path = atomic_save({**payload, "format": CHECKPOINT_FORMAT, "step": int(step)}, self.path(step))
        for old in self.steps()[:-self.keep]:
            self.path(old).unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The latest checkpoint's payload, or None when the folder has none.

        Raises:
            CheckpointError: the latest file is damaged (it is not skipped silently: delete it to
                fall back to the one before, so that a resume never quietly loses steps).
        """
        latest = self.latest()
        return None if latest is None else load_checkpoint(latest, map_location)


def rng_states() -> dict[str, Any]:
    """The global torch RNG states (CPU, and each CUDA device when CUDA is initialised), as tensors."""
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restores what :func:`rng_states` returned (CUDA states only where the device count matches)."""
    torch.set_rng_state(states["torch"].cpu())
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
