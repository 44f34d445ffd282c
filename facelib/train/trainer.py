"""The trainer of Lin et al.'s GCN texture stage: :class:`Trainer` and its generator step.

One generator step, for a batch of aligned face images I (B, S, S, 3):

1. **Coarse stage (frozen)**: the regressor (``coarse="regressor"``, the paper's) or, for synthetic
   faces, their ground-truth coefficients (``coarse="truth"``: tests, and an upper-bound ablation)
   give the unknowns id, exp, tex, angles, translation, gamma. Shape S and coarse albedo
   T = model.albedo(tex).clamp(0, 1) (B, V, 3).
2. The coarse face is rendered over I: the image colours T_p and 0/1 visibility v at the projected
   vertices (B, V, 3), (B, V); the coverage M_proj; the skin mask M_face (a per-image skin colour
   model, :func:`facelib.losses.skin_mask`, fitted inside the coverage; ``face_mask="none"``: 1).
3. The embedding of I: the frozen identity network's (:mod:`facelib.train.identity_network`: 512-D
   FaceNet or 128-D dlib ResNet), or for ``embedding="regressor+facenet"`` the regressor's pooled
   feature concatenated with it (the official code's layout). The Decoder's input size follows it.
4. T' = TextureGCN(T, T_p, v, emb) (B, V, 3); R' = render(S, T', pose, light); R' composited over I.
5. Losses (:class:`facelib.losses.Schedule`):
   L = s1 (L_pix(I, R') over M_proj x M_face + s2 L_id + s3 L_adv) + s4 (L_vert(T, T') + L_vert(T_p, T~')),
   s2 = 0.2 and s3 = 0.001; s1 and s4 follow the "linear" or "official" (staircase) ramp, in steps
   or epochs. L_vert(T_p, T~') adds the official code's hidden-vertex term (``hidden_weight``).
6. WGAN-GP: ``critic_steps`` updates of the critic (:class:`facelib.nets.Discriminator`, penalty 10)
   on I against the current R' (computed once per generator step and reused by every critic
   update: the generator has not moved in between, so fresh renders would be the same ones), then
   the generator's step with L_adv = -D(R') from the updated critic.

The items and random draws of a step are a pure function of (seed, step, rank)
(:mod:`facelib.train.sampling`); the networks run under the autocast of :mod:`facelib.train.precision`.
A non-finite loss term stops training with :class:`TrainingDiverged` naming the term and the step; no
checkpoint is written for that step, so the last good one remains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

# The loss functions are looked up on the package at each step, so a replacement there (tests) is seen.
from facelib import losses
from facelib.data import PhotoFolder, SyntheticFaces
from facelib.gcn import TextureGCN, TextureGCNConfig
from facelib.gcn.weights import texture_hierarchy
from facelib.morphable import load_open_model
from facelib.nets import Discriminator
from facelib.nets.regressor import MIRROR_AVERAGED, find_regressor_weights, load_regressor
from facelib.render import FaceRenderer, Rendering, VertexSamples
from facelib.render.composite import composite
from facelib.render.lighting import shade
from facelib.train.checkpoint import CheckpointError, CheckpointManager
from facelib.train.config import TrainConfig, check_resumable
from facelib.train.distributed import DistContext, all_reduce_mean, init_distributed, unwrap, wrap
from facelib.train.identity_network import check_identity_network, frozen_facenet
from facelib.train.inputs import TrainerInputs
from facelib.train.precision import amp_dtype, autocast, grad_scaler
from facelib.train.records import Records
from facelib.train.sampling import StepSampler, step_generator
from facelib.train.state import TrainerState, file_digest


class TrainingDiverged(FloatingPointError):
    """A loss term became NaN or infinite; the message names the term and the step."""


@dataclass
class _StepFaces:
    """One step's faces (steps 2 and 4 of the module docstring), B of each."""

    params: dict[str, torch.Tensor]  # the coarse unknowns
    shape: torch.Tensor  # S (B, V, 3)
    coarse: torch.Tensor  # T (B, V, 3)
    fitted: Rendering  # T rendered: its coverage M_proj, normals and colours
    samples: VertexSamples  # T_p and v
    m_face: torch.Tensor  # M_face (B, S, S)
    refined: torch.Tensor  # T' (B, V, 3), fp32
    rendering: Rendering  # R'
    pasted: torch.Tensor  # R' composited over I (B, S, S, 3)


class Trainer(TrainerInputs, TrainerState):
    """Trains a TextureGCN with Lin et al.'s losses (see the module docstring).

    Its inputs (:meth:`items`, :meth:`frozen`, :meth:`step_inputs`, :meth:`coarse_face`) come from
    :class:`~facelib.train.inputs.TrainerInputs`, its checkpoints (:meth:`state`,
    :meth:`save_checkpoint`, :meth:`save_gcn`) from :class:`~facelib.train.state.TrainerState`.

    Args:
        config: the run's settings.
        context: the data-parallel context (default: :func:`init_distributed` from the environment).
        resume: continue from the latest checkpoint in ``config.out/checkpoints`` (an error when there
            is none or its configuration differs in more than :data:`~facelib.train.config.RESUMABLE_CHANGES`).

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
            config = check_resumable(config, payload["config"])
        self.config = config
        self.amp_dtype = amp_dtype(config.amp, self.device)

        # Frozen parts and data. Everything random is seeded: two runs with one config are the same run.
        base = load_open_model(level=0, verbose=False)
        self.model = base.subdivided(config.level).to(self.device) if config.level else base.to(self.device)
        self.hierarchy = texture_hierarchy(base, config.level)
        self.renderer = FaceRenderer.for_model(self.model, config.size)
        if payload is not None:
            check_identity_network(config, payload)
        self.facenet = frozen_facenet(config.facenet_weights, config.allow_untrained_facenet, self.device, config.identity_network)
        if payload is not None:
            check_identity_network(config, payload, self.facenet.name)
        # L_id wherever the identity network knows faces: FaceNet's VGGFace2 weights or dlib's ResNet.
        self.use_identity = config.identity == "on" or (config.identity == "auto" and self.facenet.pretrained)
        self.regressor = None
        self.regressor_source = "none (ground-truth coarse stage)"
        if config.coarse == "regressor":
            self.regressor = load_regressor(config.regressor_weights, self.device, config.allow_untrained_regressor,
                                            verbose=self.context.is_main, model=self.model)
            for q in self.regressor.parameters():
                q.requires_grad_(False)
            # The mirror average changes every coarse input: a checkpoint made without it must not resume with it.
            self.regressor_source = file_digest(find_regressor_weights(config.regressor_weights)) + (
                f", {MIRROR_AVERAGED}" if self.regressor.mirror_average is not None else "")
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
        self.scaler = grad_scaler(self.amp_dtype)  # one per optimiser: each loss scale follows its own gradients
        self.critic_scaler = grad_scaler(self.amp_dtype)
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

    # ---- the schedule ----------------------------------------------------------------------------
    def _schedule(self) -> losses.Schedule:
        c = self.config
        if c.schedule == "linear":
            ramp = c.ramp or (max(1, c.steps // 2) if c.schedule_unit == "step" else 5)
            return losses.Schedule(ramp_steps=ramp, mode="linear", s2=c.s2, s3=c.s3)
        stair = c.ramp or (max(1, c.steps // 10) if c.schedule_unit == "step" else 1)
        return losses.Schedule(mode="official", steps_per_epoch=stair, s2=c.s2, s3=c.s3)

    def schedule_position(self, step: int) -> int:
        """What the schedule counts at ``step``: the step itself, or its epoch."""
        return step if self.config.schedule_unit == "step" else step // self.steps_per_epoch

    def weights(self, step: int) -> dict[str, float]:
        """s1..s4 at ``step`` (s2 = 0 without L_id, s3 = 0 without the critic)."""
        w = self.schedule.weights(self.schedule_position(step))
        return w | {"s2": w["s2"] if self.use_identity else 0.0, "s3": w["s3"] if self.critic is not None else 0.0}

    # ---- one step --------------------------------------------------------------------------------
    def train_step(self, step: int, batch: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """One generator step (with its critic steps) at ``step``; returns the logged values (all ranks' mean).

        Args:
            step: the global step (it picks the items, the schedule and the random draws).
            batch: the items to use instead of this step's own (benchmarks).

        Raises:
            TrainingDiverged: a loss term is NaN or infinite.
        """
        c = self.config
        start = time.perf_counter()
        gen = step_generator(c.seed, step, self.context.rank)
        inputs = self.step_inputs(step) if batch is None else self.frozen(batch)  # 1-3: the frozen parts
        faces = self._faces(inputs)  # 2, 4: the coarse face, then the GCN's
        w = self.weights(step)
        log: dict[str, float] = {}
        if self.critic is not None and c.critic_steps > 0:
            log = self._critic_steps(inputs["image"], faces.pasted.detach(), gen)  # 6
        terms = self._generator_terms(inputs, faces, w["s1"])  # 5
        # Left-out terms count as zero in the total: that is the ablations' s2 = 0 and s3 = 0.
        total, _ = self.schedule.total(self.schedule_position(step), terms)
        values = {k: float(v.detach()) for k, v in terms.items()} | log | {"total": float(total.detach())}
        values = all_reduce_mean(values, self.context)
        self._stop_if_diverged(values, step)
        self._generator_step(total)
        seconds = time.perf_counter() - start
        world_batch = c.batch * self.context.world_size
        return values | w | {"lr": self.gcn_optimizer.param_groups[0]["lr"], "images_per_s": world_batch / seconds}

    def _faces(self, inputs: dict[str, torch.Tensor]) -> _StepFaces:
        """The coarse face and its skin mask (without gradients); T' from the GCN, rendered in fp32 over I."""
        image = inputs["image"]
        params, shape, coarse, fitted, samples = self.coarse_face(inputs)
        with torch.no_grad():
            m_face = losses.skin_mask(image, fitted.mask) if self.config.face_mask == "skin" else torch.ones_like(fitted.mask)
        self.gcn_train.train()
        with autocast(self.device, self.amp_dtype):
            refined = self.gcn_train(coarse, samples.colors, samples.visibility, inputs["embedding"])
        refined = refined.float()
        rendering = self.renderer.render(shape, refined, params["angles"], params["translation"], params["gamma"])
        return _StepFaces(params, shape, coarse, fitted, samples, m_face, refined, rendering, composite(rendering, image))

    def _critic_steps(self, image: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        """``critic_steps`` WGAN-GP updates on the real ``image`` against the ``fake`` (R' over I, detached).

        Returns:
            The last kept update's loss and parts, and "critic_skipped" when fp16 skipped updates.
        """
        c = self.config
        log: dict[str, float] = {}
        skipped = 0
        for _ in range(c.critic_steps):
            fp16 = self.critic_scaler.is_enabled()
            scale_before = self.critic_scaler.get_scale() if fp16 else 1.0
            with autocast(self.device, self.amp_dtype):
                # The penalty's inner scale only keeps fp16 gradients from underflowing; it is
                # divided out at once, so it need not be the loss scale, and 2^16 itself would
                # overflow fp16 (its largest value is 65,504).
                loss, parts = losses.critic_loss(self.critic_train, image, fake, c.penalty, generator=gen,
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
        return log

    def _generator_terms(self, inputs: dict[str, torch.Tensor], faces: _StepFaces, s1: float) -> dict[str, torch.Tensor]:
        """The generator's loss terms (pixel, vertex, projected; identity and adversarial while ``s1`` > 0)."""
        image, f = inputs["image"], faces
        terms = {"pixel": losses.photometric_loss(f.rendering.image, image, f.rendering.mask * f.m_face),
                 "vertex": losses.vertex_loss(f.coarse, f.refined),
                 "projected": losses.projected_color_loss(f.samples.colors, shade(f.refined, f.fitted.normals, f.params["gamma"]),
                                                          f.samples.visibility, f.fitted.colors, self.config.hidden_weight)}
        # FaceNet's backward and the critic's cost time: skipped while s1 (their factor) is 0.
        if self.use_identity and s1 > 0:
            with autocast(self.device, self.amp_dtype):
                terms["identity"] = losses.identity_loss(inputs["target"], self.facenet(f.pasted).float())
        if self.critic is not None and s1 > 0:
            critic = unwrap(self.critic_train)
            critic.requires_grad_(False)  # gradients flow through the critic to R', not into it
            try:
                with autocast(self.device, self.amp_dtype):
                    terms["adversarial"] = losses.generator_loss(critic, f.pasted).float()
            finally:
                critic.requires_grad_(True)
        return terms

    def _stop_if_diverged(self, values: dict[str, float], step: int) -> None:
        """Raises :class:`TrainingDiverged` when a logged value is NaN or infinite (before any update of the GCN)."""
        for name, value in values.items():
            if not math.isfinite(value):
                last = self.checkpoints.latest()
                where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet (checkpoint_every)"
                raise TrainingDiverged(f"loss term {name!r} is {value} at step {step}: training stopped; {where} "
                                       "(lower lr, or critic_lr, and resume)")

    def _generator_step(self, total: torch.Tensor) -> None:
        """The GCN's optimiser step on the total loss (through its GradScaler)."""
        self.gcn_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.gcn_optimizer)
        self.scaler.update()

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
