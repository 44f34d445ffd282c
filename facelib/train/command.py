"""``python -m facelib train``: one training run, in this process or as one rank of ``torchrun``.

The command's flags are :func:`facelib.train.config.add_config_arguments`'s (one per
:class:`~facelib.train.config.TrainConfig` field, over an optional YAML file).
"""

from __future__ import annotations

from pathlib import Path

from facelib.train.config import TrainConfig
from facelib.train.distributed import init_distributed, shutdown
from facelib.train.trainer import Trainer


def run_training(config: TrainConfig, resume: bool = False) -> Trainer:
    """Trains (in this process, or as one rank of ``torchrun``) and returns the trainer.

    Raises:
        TrainingDiverged, CheckpointError: as :class:`Trainer`.
    """
    context = init_distributed(config.device)
    try:
        trainer = Trainer(config, context, resume=resume)
        if context.is_main:
            print(f"facelib train: {trainer.gcn.config.name} TextureGCN on {trainer.hierarchy.num_vertices[0]:,} vertices, "
                  f"{config.size} px, batch {config.batch} x {context.world_size} process(es) on {context.device}, "
                  f"coarse stage: {config.coarse}, data: {config.data}, from step {trainer.step} to {config.steps}; "
                  f"L_id {'on' if trainer.use_identity else 'off'} (identity network {trainer.facenet.name}), critic {'on' if trainer.critic is not None else 'off'}, "
                  f"AMP {trainer.amp_dtype or 'off'}; run folder {Path(config.out).resolve()}")
        trainer.train()
        if context.is_main and trainer.step < config.steps:
            print(f"facelib train: interrupted at step {trainer.step} of {config.steps}; resume with the same command and --resume")
        elif context.is_main:
            print(f"facelib train: step {trainer.step}; GCN weights {Path(config.out) / 'texture_gcn.pt'} "
                  f"(python -m facelib reconstruct PHOTO --gcn-weights ... --level {config.level}); log {Path(config.out) / 'log.csv'}")
        return trainer
    finally:
        shutdown(context)
