"""What a checkpoint of a GCN-stage run holds, and how a run is restored from one.

The payload (:meth:`TrainerState.state`) holds tensors and plain types only, so that
:func:`~facelib.train.checkpoint.load_checkpoint` reads it with ``weights_only=True``: the GCN's and
the critic's weights, both optimisers' and both GradScalers' states, the step, the configuration
(:meth:`TrainConfig.to_dict`), the global torch RNG states, the number of CSV rows written, the
number of ranks, the regressor's record (:func:`file_digest` of its weights file) and the identity
network's name. No class or module path is stored: a checkpoint does not depend on where the code lives.

Restoring refuses another coarse stage (the regressor's record must match: it is part of the model
being trained); another number of ranks is allowed, with a note (the items of each step change).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facelib.gcn import TextureGCN
from facelib.gcn.weights import save_texture_gcn
from facelib.train.checkpoint import CheckpointError, CheckpointManager, rng_states, set_rng_states
from facelib.train.config import TrainConfig
from facelib.train.distributed import DistContext
from facelib.train.records import Records


def file_digest(path: Path | None) -> str:
    """"sha256:<first 16 hex digits> (<file name>)" of a weights file, or "untrained" without one."""
    if path is None or not Path(path).is_file():
        return "untrained"
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"sha256:{digest} ({Path(path).name})"


class TrainerState:
    """The checkpoint part of :class:`~facelib.train.trainer.Trainer`, which sets the attributes below.

    Attributes:
        config, context: the run's settings and data-parallel context.
        step: the number of generator steps done.
        gcn, critic: the networks (unwrapped; no critic: None), with their optimisers and GradScalers.
        checkpoints: the run's checkpoint folder.
        records: the log (rank 0; None elsewhere).
        regressor_source: the regressor's record (:func:`file_digest`).
        facenet: the frozen identity network (its ``name`` is recorded).
    """

    config: TrainConfig
    context: DistContext
    step: int
    gcn: TextureGCN
    critic: nn.Module | None
    gcn_optimizer: torch.optim.Optimizer
    critic_optimizer: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler
    critic_scaler: torch.amp.GradScaler
    checkpoints: CheckpointManager
    records: Records | None
    regressor_source: str
    facenet: nn.Module

    def state(self) -> dict[str, Any]:
        """The checkpoint payload (tensors and plain types only)."""
        return {"gcn": {k: v.detach().cpu() for k, v in self.gcn.state_dict().items()},
                "critic": {k: v.detach().cpu() for k, v in self.critic.state_dict().items()} if self.critic is not None else None,
                "gcn_optimizer": self.gcn_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict() if self.critic_optimizer is not None else None,
                "scaler": self.scaler.state_dict(), "critic_scaler": self.critic_scaler.state_dict(), "step": self.step, "config": self.config.to_dict(), "rng": rng_states(),
                "csv_rows": self.records.rows if self.records is not None else 0, "world_size": self.context.world_size,
                "regressor": self.regressor_source, "identity_network": self.facenet.name,
                "torch": str(torch.__version__)}

    def _load_state(self, payload: dict[str, Any]) -> None:
        try:
            self.gcn.load_state_dict(payload["gcn"])
            self.gcn_optimizer.load_state_dict(payload["gcn_optimizer"])
            if self.critic is not None:
                self.critic.load_state_dict(payload["critic"])
                self.critic_optimizer.load_state_dict(payload["critic_optimizer"])
            if payload.get("scaler"):
                self.scaler.load_state_dict(payload["scaler"])
            if payload.get("critic_scaler"):  # older checkpoints shared one scaler: the critic's starts afresh
                self.critic_scaler.load_state_dict(payload["critic_scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"the checkpoint does not fit this run's networks ({type(err).__name__}: {err})") from err
        if int(payload.get("world_size", 1)) != self.context.world_size:
            # Allowed, but the data order (and so the result) then differs from an uninterrupted run.
            if self.context.is_main:
                print(f"facelib.train: resuming a {payload.get('world_size')}-process run with {self.context.world_size} processes: "
                      "the items of each step change, so the run is no longer identical to an uninterrupted one")
        stored = payload.get("regressor")
        if stored is not None and stored != self.regressor_source:
            # The coarse stage is part of the model being trained: another regressor would change every input.
            raise CheckpointError(f"this run was trained with the regressor {stored}, but now {self.regressor_source} would be "
                                  "used: point regressor_weights (or FACELIB_REGRESSOR_WEIGHTS) at the original file")
        set_rng_states(payload["rng"])
        self.step = int(payload["step"])

    def save_checkpoint(self) -> Path | None:
        """Writes a checkpoint of the current step (rank 0 only; None elsewhere)."""
        if not self.context.is_main:
            return None
        return self.checkpoints.save(self.step, self.state())

    def save_gcn(self, path: str | Path | None = None) -> Path | None:
        """Writes the GCN with :func:`facelib.gcn.weights.save_texture_gcn` (what ``reconstruct --gcn-weights`` reads).

        Returns:
            The path (default ``<out>/texture_gcn.pt``); None on ranks other than 0.
        """
        if not self.context.is_main:
            return None
        c = self.config
        return save_texture_gcn(path or Path(c.out) / "texture_gcn.pt", self.gcn, steps=self.step, level=c.level, size=c.size,
                                data=c.data, coarse=c.coarse, embedding=c.embedding, seed=c.seed,
                                identity_network=self.facenet.name)
