"""Scoring trained GCN runs on the synthetic benchmark, and the ablation study.

:mod:`facelib.evaluate` measures any method against the ground truth; this module turns training
runs into methods and runs the ablations of issue 9 / Lin et al.'s section 4.3:

* "3DMM only": the coarse stage's albedo T = model.albedo(tex), with its shape, pose and light;
* "GCN": the run's TextureGCN, T' = G(T, T_p, v, f(I)), on the same coarse stage (one forward pass);
* ablations: the same training with one part left out (:data:`ABLATIONS`): no Refiner, no Decoder,
  no adversarial loss, no identity loss.

A method sees the benchmark faces exactly as training saw its faces: the coarse stage of the run
(its regressor, or the ground truth for ``coarse="truth"`` runs), the frozen identity network it was
trained with (recorded in its checkpoint), the renderer at
the run's image size and mesh level. The benchmark (seed 2020, its own split) never shares a face with
the training data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from facelib.data import benchmark
from facelib.evaluate import Method, Prediction, Scores, evaluate, once_per_batch
from facelib.nets.dlib_resnet import DlibWeightsError
from facelib.nets.identity import FACENET_UNTRAINED_ID, FaceNetWeightsError
from facelib.train.checkpoint import CheckpointError, CheckpointManager
from facelib.train.config import TrainConfig
from facelib.train.identity_network import identity_network_advice, recorded_identity_network, resolve_identity_network
from facelib.train.trainer import Trainer

ABLATIONS: dict[str, dict[str, object]] = {
    "no Refiner": {"refiner": False},
    "no Decoder": {"decoder": False},
    "no adversarial loss": {"adversarial": False},
    "no identity loss": {"identity": "off"},
}
"""Ablation name -> the :class:`TrainConfig` changes that make it."""

BASELINE = "3DMM only"
"""The name of the coarse stage's own albedo in the tables."""


def benchmark_faces(config: TrainConfig, n: int, device: str | torch.device | None = None):
    """The benchmark at a run's image size and mesh level (on the run's device by default)."""
    return benchmark(n=n, size=config.size, level=config.level, device=device or config.device)


def texture_methods(trainer: Trainer, name: str = "GCN", baseline: bool = True) -> dict[str, Method]:
    """The run's TextureGCN (and, with ``baseline``, its coarse stage's 3DMM albedo) as benchmark methods.

    Args:
        trainer: a trainer (a finished run: :func:`load_run`).
        name: the GCN method's name in the tables.
        baseline: also return :data:`BASELINE`.
    """

    @once_per_batch  # both methods read the same batch: run the frozen networks once for it
    def inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        frozen = trainer.frozen(batch)
        params, _, coarse, _, samples = trainer.coarse_face(frozen)
        return {"params": params, "coarse": coarse, "colors": samples.colors, "visibility": samples.visibility,
                "embedding": frozen["embedding"]}

    def coarse_method(batch: dict[str, torch.Tensor]) -> Prediction:
        x = inputs(batch)
        return Prediction(x["coarse"], x["params"])

    def gcn_method(batch: dict[str, torch.Tensor]) -> Prediction:
        x = inputs(batch)
        trainer.gcn.eval()
        with torch.no_grad():
            albedo = trainer.gcn(x["coarse"], x["colors"], x["visibility"], x["embedding"]).float()
        return Prediction(albedo, x["params"])

    methods: dict[str, Method] = {BASELINE: coarse_method} if baseline else {}
    methods[name] = gcn_method
    return methods


def load_run(out: str | Path, device: str | None = None) -> Trainer:
    """A finished (or interrupted) run, from the latest checkpoint in ``out/checkpoints``.

    The run is rebuilt with the identity network its checkpoint recorded (``identity_network``;
    see :func:`~facelib.train.identity_network.recorded_identity_network` for checkpoints older than that record),
    whatever "auto" would choose here now: its Decoder reads that network's embedding.

    Raises:
        CheckpointError: the folder has no checkpoint, the latest one is damaged, or the identity
            network it was trained with cannot be built here (the message names it, the one that would
            be used instead, and how to get the recorded one).
    """
    manager = CheckpointManager(Path(out) / "checkpoints")
    payload = manager.load_latest()
    if payload is None:
        raise CheckpointError(f"{out}: no checkpoint in {manager.folder}; train first (python -m facelib train --out {out})")
    config = TrainConfig.from_dict(payload["config"])
    recorded, _ = recorded_identity_network(payload, config)
    config = dataclasses.replace(config, out=str(out), progress=False, tensorboard=False, identity_network=recorded,
                                 **({"device": device} if device is not None else {}))
    try:
        trainer = Trainer(config, resume=True)
    except (FaceNetWeightsError, DlibWeightsError) as err:  # the recorded network is not here
        instead = resolve_identity_network(dataclasses.replace(config, identity_network="auto"))
        raise CheckpointError(f"{out} was trained with the identity network {recorded!r}, which cannot be built here "
                              f"({type(err).__name__}: {err}); {instead or 'no identity network'!r} would be used instead, but "
                              f"the run's Decoder reads {recorded!r}'s embedding: {identity_network_advice(recorded)}") from err
    if trainer.records is not None:
        trainer.records.close()  # evaluating must not append to the run's log
        trainer.records = None
    return trainer


def ablation_configs(base: TrainConfig, names: list[str] | None = None) -> dict[str, TrainConfig]:
    """The full run and its ablations, each in its own folder under ``base.out``.

    An ablation that changes nothing (e.g. "no identity loss" when L_id is already off because the
    identity network is the untrained FaceNet) is left out, with a printed note.
    """
    identity_off = base.identity == "off" or (base.identity == "auto" and resolve_identity_network(base) in (FACENET_UNTRAINED_ID, None))
    configs = {"full": dataclasses.replace(base, out=str(Path(base.out) / "full"))}
    for name in names if names is not None else list(ABLATIONS):
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; choose from {sorted(ABLATIONS)}")
        changes = ABLATIONS[name]
        if name == "no identity loss" and identity_off:
            print(f"ablation {name!r} skipped: L_id is already off in the base run (an untrained identity network, or identity='off')")
            continue
        if name == "no adversarial loss" and (not base.adversarial or base.critic_steps == 0):
            print(f"ablation {name!r} skipped: the base configuration has no critic")
            continue
        folder = name.replace(" ", "_").lower()
        configs[name] = dataclasses.replace(base, out=str(Path(base.out) / folder), **changes)
    return configs


def train_or_load(config: TrainConfig) -> Trainer:
    """Trains a run to ``config.steps`` (resuming a partial one), or loads it when it is complete."""
    manager = CheckpointManager(Path(config.out) / "checkpoints")
    trainer = Trainer(config, resume=manager.latest() is not None)
    if trainer.step < config.steps:
        trainer.train()
    return trainer


def ablation_study(base: TrainConfig, n: int = 50, names: list[str] | None = None, batch_size: int = 8,
                   progress: bool = False) -> tuple[dict[str, Scores], dict[str, Trainer]]:
    """Trains the full run and its ablations (or loads them when done) and scores them on the benchmark.

    Args:
        base: the full run's configuration; each variant trains in a folder under ``base.out``.
        n: benchmark faces.
        names: which ablations (default: all of :data:`ABLATIONS` that change something).
        batch_size: benchmark faces per batch.
        progress: progress bars.

    Returns:
        (method name -> :class:`Scores`, with :data:`BASELINE` first; variant name -> its trainer).
    """
    configs = ablation_configs(base, names)
    trainers = {}
    for name, config in configs.items():
        print(f"--- {name}: {config.out}")
        trainers[name] = train_or_load(config)
    faces = benchmark_faces(base, n, trainers["full"].device)
    methods: dict[str, Method] = {}
    for name, trainer in trainers.items():
        methods |= texture_methods(trainer, "GCN" if name == "full" else f"GCN, {name}", baseline=name == "full")
    return evaluate(methods, faces, batch_size=batch_size, progress=progress), trainers
