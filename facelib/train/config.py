"""The settings of a GCN-stage training run: :class:`TrainConfig`, its choices, YAML and the command line.

A configuration holds plain types only (it goes into every checkpoint and can be written as YAML,
see ``configs/``), and it is checked when it is made: a setting outside its choices or range is
refused with the allowed values. Two runs with one configuration are the same run (everything random
is seeded by ``seed``).

* :meth:`TrainConfig.from_yaml` / :meth:`TrainConfig.from_dict` read settings (dashes or underscores),
  refusing unknown keys; :meth:`TrainConfig.to_dict` writes them back.
* :func:`add_config_arguments` makes one ``--flag`` per field; :func:`config_from_args` lays the given
  flags over the config file.
* :func:`check_resumable`: a resumed run may change only :data:`RESUMABLE_CHANGES`.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facelib.train.checkpoint import CheckpointError

COARSE_SOURCES = ("regressor", "truth")
DATA_SOURCES = ("synthetic", "photos", "mix")
EMBEDDINGS = ("facenet", "regressor+facenet")
AMP_MODES = ("auto", "off", "bf16", "fp16")

RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "keep", "progress", "tensorboard", "device", "compile", "log_every", "out",
                               "identity_network"})
"""Settings a resumed run may change; any other difference from the checkpoint's configuration is refused.
(``identity_network`` may be spelt differently, "auto" or a name; the network it *resolves to* must be
the one the checkpoint recorded, see :func:`facelib.train.identity_network.check_identity_network`.)"""
IDENTITY_NETWORK_CHOICES = ("auto", "facenet_vggface2", "dlib_resnet_v1", "facenet_untrained", "facenet", "dlib")


@dataclass
class TrainConfig:
    """Everything a training run depends on (plain types only: it goes into checkpoints and YAML).

    Attributes:
        out: the run folder (``log.csv``, ``tensorboard/``, ``checkpoints/``, ``texture_gcn.pt``).
        steps: generator steps in all (a resumed run goes on to this many).
        batch: images per step and per rank.
        size: image side in pixels (a multiple of 32, for the critic: 64, 96, 224).
        level: subdivision level of the face mesh that carries the albedo (0: 3,141 vertices).
        gcn: TextureGCN preset ("small", "paper", "official", "official-wide").
        refiner, decoder: build the Refiner / the Decoder (False: the "no Refiner" / "no Decoder" ablations).
        residual: the GCN outputs a change of the 3DMM albedo and starts at it (``TextureGCNConfig.residual``;
            facelib's choice for short runs) instead of the albedo itself (False: the paper's form).
        adversarial: the WGAN-GP term and its critic (False: s3 = 0 and no critic, an ablation).
        identity: L_id "on", "off" (the "no identity loss" ablation, s2 = 0), or "auto": on whenever the
            identity network is pretrained (FaceNet's VGGFace2 weights or dlib's ResNet; an untrained
            FaceNet's embedding carries no identity).
        identity_network: which identity network: "auto" (FaceNet when its weights are here, else dlib's
            ResNet, see :class:`~facelib.nets.IdentityEncoder`), or a name, "facenet_vggface2",
            "dlib_resnet_v1", "facenet_untrained" ("facenet", "dlib" for short). A resumed run must
            resolve to the network its checkpoint recorded.
        embedding: what the Decoder reads: "facenet" (the identity network's embedding, 512 or 128;
            what ``reconstruct`` feeds a trained GCN)
            or "regressor+facenet" (the official code's layout; needs ``coarse="regressor"``).
        coarse: "regressor" (the paper's frozen coarse stage) or "truth" (synthetic ground truth).
        regressor_weights: the regressor's weights file (None: its default lookup).
        allow_untrained_regressor: run with an untrained regressor when none is found (announced).
        facenet_weights: a local FaceNet weights file (None: the usual lookup, see IdentityEncoder).
        allow_untrained_facenet: run with an untrained FaceNet when no pretrained identity network (FaceNet's
            weights or dlib's ResNet) is found (announced).
        data: "synthetic" (SyntheticFaces), "photos" (a PhotoFolder) or "mix" (both, concatenated:
            the share of photos is len(photos) / (len(photos) + synthetic_n)).
        synthetic_n: the number of synthetic items.
        photos: the folder of photos for "photos" and "mix".
        photo_cache: where the aligned crops go (None: PhotoFolder's default).
        face_mask: M_face: "skin" (a per-image skin colour model inside the coverage) or "none".
        hidden_weight: the hidden-vertex weight of L_vert(T_p, T~') (the official code's 0.3; 0: the paper's).
        schedule: "linear" or "official" (staircase s1 = 0, 0.2, ..., 1; s4 = max(1 - s1, 0.2)).
        schedule_unit: "step" or "epoch": what the ramp counts.
        ramp: linear: units over which s1 goes 0 -> 1 (None: half the steps, or 5 epochs);
            official: units per stair (None: a tenth of the steps, or 1 epoch, the official code's).
        steps_per_epoch: steps per epoch (None: the data's items / (batch x ranks)).
        s2, s3: the fixed weights of L_id and L_adv.
        lr: the GCN's Adam learning rate (1e-4 in the paper).
        critic_lr: the critic's Adam learning rate.
        betas: Adam's betas for both (WGAN-GP's (0.5, 0.9) is a common alternative).
        critic_steps: critic updates per generator step (the official 5; 1 or 0 for speed).
        critic_width: channels of the critic's first layer (64 in the paper).
        penalty: the gradient penalty weight (10).
        amp: "auto" (bf16 on Ampere or later, fp32 on older cards and on the CPU), "off", "bf16" or
            "fp16" (CUDA only; fp16 may be faster on cards older than Ampere, untested there).
        compile: ``torch.compile`` the GCN and the critic.
        cache: keep each item's image, coarse unknowns and embeddings in memory after its first use.
            Exact (they are frozen functions of the item), and it spares FaceNet, the regressor and
            the synthetic renderer from the second epoch on; for small data sets (fast mode), since
            it holds every item seen.
        seed: the seed of the initialisation, of the data order and of every random draw.
        device: "cpu", "cuda" (None: CUDA when available).
        checkpoint_every: steps between checkpoints (0: only on interrupt and at the end).
        keep: checkpoints kept.
        log_every: steps between log rows.
        progress: show a progress bar.
        tensorboard: write TensorBoard events (when the package is installed).
    """

    out: str = "runs/gcn"
    steps: int = 300
    batch: int = 4
    size: int = 96
    level: int = 0
    gcn: str = "small"
    refiner: bool = True
    decoder: bool = True
    residual: bool = True
    adversarial: bool = True
    identity: str = "auto"
    identity_network: str = "auto"
    embedding: str = "facenet"
    coarse: str = "regressor"
    regressor_weights: str | None = None
    allow_untrained_regressor: bool = False
    facenet_weights: str | None = None
    allow_untrained_facenet: bool = False
    data: str = "synthetic"
    synthetic_n: int = 100_000
    photos: str | None = None
    photo_cache: str | None = None
    face_mask: str = "skin"
    hidden_weight: float = 0.3
    schedule: str = "linear"
    schedule_unit: str = "step"
    ramp: int | None = None
    steps_per_epoch: int | None = None
    s2: float = 0.2
    s3: float = 0.001
    lr: float = 1e-4
    critic_lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    critic_steps: int = 5
    critic_width: int = 64
    penalty: float = 10.0
    amp: str = "auto"
    compile: bool = False
    cache: bool = False
    seed: int = 0
    device: str | None = None
    checkpoint_every: int = 100
    keep: int = 3
    log_every: int = 1
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives lists
        choices = {"coarse": COARSE_SOURCES, "data": DATA_SOURCES, "embedding": EMBEDDINGS, "amp": AMP_MODES,
                   "identity": ("auto", "on", "off"), "identity_network": IDENTITY_NETWORK_CHOICES, "face_mask": ("skin", "none"), "schedule": ("linear", "official"),
                   "schedule_unit": ("step", "epoch")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = {"steps": self.steps, "batch": self.batch, "synthetic_n": self.synthetic_n, "keep": self.keep,
                    "log_every": self.log_every, "critic_width": self.critic_width}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.size < 32 or self.size % 32:
            raise ValueError(f"size must be a multiple of 32 (the critic halves it five times): 64, 96, 128, 224; got {self.size}")
        if not 0 <= self.level <= 3:
            raise ValueError(f"level must be 0-3, got {self.level}")
        if self.critic_steps < 0 or self.checkpoint_every < 0:
            raise ValueError("critic_steps and checkpoint_every must be >= 0")
        if self.lr <= 0 or self.critic_lr <= 0 or self.penalty < 0 or self.hidden_weight < 0 or self.s2 < 0 or self.s3 < 0:
            raise ValueError("learning rates must be > 0; penalty, hidden_weight, s2 and s3 >= 0")
        if (self.ramp is not None and self.ramp < 1) or (self.steps_per_epoch is not None and self.steps_per_epoch < 1):
            raise ValueError("ramp and steps_per_epoch must be >= 1 (or None)")
        if self.data in ("photos", "mix") and not self.photos:
            raise ValueError(f"data={self.data!r} needs photos= a folder of face photos")
        if self.data in ("photos", "mix") and self.coarse == "truth":
            raise ValueError("coarse='truth' needs synthetic faces (photos have no ground truth): use coarse='regressor'")
        if self.embedding == "regressor+facenet" and self.coarse != "regressor":
            raise ValueError("embedding='regressor+facenet' reads the regressor's feature: use coarse='regressor'")
        if not (self.refiner or self.decoder):
            raise ValueError("refiner and decoder cannot both be off")

    @property
    def uses_critic(self) -> bool:
        # Without critic steps the critic would stay at its random start: no adversarial term then.
        return self.adversarial and self.s3 > 0 and self.critic_steps > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain types (tuples as lists), for checkpoints and YAML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """From a dict (YAML keys may use dashes); unknown keys are refused with the list of known ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        clean = {str(k).replace("-", "_"): v for k, v in values.items()}
        unknown = sorted(set(clean) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known ones: {sorted(names)}")
        return cls(**clean)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Reads a YAML file of settings (see ``configs/``), then applies ``overrides``."""
        text = Path(path).read_text()
        values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of settings, got {type(values).__name__}")
        return cls.from_dict({**values, **overrides})


def check_resumable(config: TrainConfig, stored: dict[str, Any]) -> TrainConfig:
    """``config`` when a run stored with the settings ``stored`` may go on under it.

    Raises:
        CheckpointError: a setting outside :data:`RESUMABLE_CHANGES` differs (listing each), or
            ``steps`` does while the ramp is the default one (a share of the steps).
    """
    saved = TrainConfig.from_dict(stored)
    differ = {f.name: (getattr(saved, f.name), getattr(config, f.name)) for f in dataclasses.fields(TrainConfig)
              if getattr(saved, f.name) != getattr(config, f.name) and f.name not in RESUMABLE_CHANGES}
    if saved.ramp is None and saved.steps != config.steps:
        # The default ramp is a share of `steps`: changing them would move the schedule under the run.
        differ["steps"] = (saved.steps, config.steps)
    if differ:
        listing = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, a, b in ((k, *v) for k, v in differ.items()))
        raise CheckpointError(f"--resume: the configuration differs from the checkpoint's ({listing}); "
                              f"only {sorted(RESUMABLE_CHANGES)} may change on resume (steps only with an explicit ramp, "
                              "since the default ramp is a share of the steps)")
    return config


# ---- the command line ----------------------------------------------------------------------------
_INT_OR_NONE = {"ramp", "steps_per_epoch"}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`TrainConfig` field (dashes for underscores); unset flags leave the config file's value."""
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"(default {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f"cfg_{f.name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=f"cfg_{f.name}", type=float, nargs=len(default), default=None, metavar="X", help=help_text)
        else:
            kind = int if f.name in _INT_OR_NONE else (type(default) if default is not None else str)
            parser.add_argument(flag, dest=f"cfg_{f.name}", type=kind, default=None, metavar=f.name.upper(), help=help_text)


def config_from_args(args) -> TrainConfig:
    """The config file (``args.config``, optional) with every flag that was given on top."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    if getattr(args, "config", None):
        return TrainConfig.from_yaml(args.config, **overrides)
    return TrainConfig.from_dict(overrides)
