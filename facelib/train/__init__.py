"""Training: the coarse-stage regressor on synthetic faces, and the GCN texture stage's trainer.

* :mod:`facelib.train.regressor`: the regressor (coefficients from an image) on synthetic faces.
* :mod:`facelib.train.trainer`: :class:`Trainer`, Lin et al.'s GCN stage (frozen coarse stage and
  identity network, TextureGCN, renderer, WGAN-GP critic, the loss schedule) and its step; its parts:
  :mod:`~facelib.train.inputs` (what a step reads) and :mod:`~facelib.train.state` (its checkpoints).
* :mod:`facelib.train.config`: :class:`TrainConfig`, YAML and the command line's flags.
* :mod:`facelib.train.sampling`: :class:`StepSampler` and the per-step random generator.
* :mod:`facelib.train.precision`: the autocast dtype and the GradScalers.
* :mod:`facelib.train.identity_network`: the frozen identity network and its record in checkpoints.
* :mod:`facelib.train.command`: ``python -m facelib train`` (:func:`~facelib.train.command.run_training`).
* :mod:`facelib.train.checkpoint`: atomic checkpoints, the last k kept, safe loading.
* :mod:`facelib.train.records`: the CSV log, TensorBoard, the in-memory history.
* :mod:`facelib.train.distributed`: ``torchrun`` data parallelism with DistributedDataParallel.
"""

from facelib.train.checkpoint import CHECKPOINT_FORMAT, CheckpointError, CheckpointManager, atomic_save, load_checkpoint
from facelib.train.distributed import DistContext, init_distributed
from facelib.train.records import Records, read_log
from facelib.train.regressor import RegressorTrainConfig, render_pool, train_regressor
from facelib.train.config import TrainConfig
from facelib.train.sampling import StepSampler
from facelib.train.trainer import Trainer, TrainingDiverged

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "CheckpointManager", "DistContext", "Records", "RegressorTrainConfig",
           "StepSampler", "TrainConfig", "Trainer", "TrainingDiverged", "atomic_save", "init_distributed",
           "load_checkpoint", "read_log", "render_pool", "train_regressor"]
