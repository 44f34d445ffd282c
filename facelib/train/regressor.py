"""Training the coarse-stage regressor on synthetic faces with ground truth.

    L = sum_g w_g ||(c_g - c_g*) / s_g||^2          supervised coefficients, per group g, in units of the
                                                  regressor's output scales s_g (so every group is O(1))
      + w_S ||I (c_id - c_id*)||^2 / sigma_S^2       the same errors as the surface and the colour they make:
      + w_E ||E (c_exp - c_exp*)||^2 / sigma_E^2     mean squared vertex error of the identity part and the
      + w_T ||T (c_tex - c_tex*)||^2 / sigma_T^2     expression part (millimetres) and of the albedo. A
                                                  coefficient loss weighs all 80 identity coefficients
                                                  alike, although the first 17 hold 90 % of the shape's
                                                  variance: it stays at about 1 per coefficient, the
                                                  unlearnable tail's noise. Per vertex, the loss weighs each
                                                  component by what it does to the face.
      + w_A d_A(S(c), S*) / sigma_A                  the benchmark's own shape error: the mean distance over the
                                                  skin between the predicted and the true surface (identity and
                                                  expression together) after the best similarity alignment
                                                  (:func:`~facelib.evaluate.metrics.aligned_vertex_error`). The
                                                  per-vertex terms above also charge the face's size and
                                                  placement, which the image shows only together with the
                                                  camera's distance; this term charges only the form.
      + w_lm L_lm(q(c), q*)                          the predicted face's 68 landmarks, projected, against the
                                                  true ones (visible ones only, Deng's weights)
      + w_pix L_pix(R(c), I)                        the rendering of the prediction against the image, on the
                                                  true skin (small weight: the photometric term is what a real
                                                  photo offers, the supervised terms do most of the work here)
      + w_coef L_coef(c) + w_gamma L_gamma(gamma)   the priors of :mod:`facelib.losses`

How (and why so on a CPU): rendering a synthetic face costs more than a training step of a small
ResNet (about 70 faces/s at 112 px on two cores), so a fixed **pool** of synthetic faces is
rendered once (cached under ``facelib.config.CACHE_DIR / "regressor_pool"``, uint8) and the
network trains several epochs over it with cheap photometric augmentation (gain, contrast,
colour cast, blur, noise) that leaves the labels true. The photometric term renders the prediction
at a small size (``photo_size``), since it only has to be roughly right. Adam, cosine learning
rate, a seed, a tqdm progress bar; the run prints images/s and its time and writes the weights with
:func:`facelib.nets.save_regressor` together with its settings and benchmark numbers.

The weights that ship in ``data/weights/regressor.pt`` were made by this code on a two-core CPU
(two runs of ``python -m facelib train-regressor``, the second fine-tuning the first with ``--init``
and the aligned shape term; ``data/README.md`` gives both commands): shipping them gives a
fresh CPU user a good coarse start at once, where a first-use training run would cost tens of
minutes. A GPU user retrains bigger with, e.g.,
``python -m facelib train-regressor --arch resnet50 --input-size 224 --pool 50000 --pretrained``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from facelib import config as settings
from facelib.data import SyntheticConfig, SyntheticFaces
from facelib.files import atomic_save
from facelib.evaluate.metrics import aligned_vertex_error
from facelib.evaluate.regressor import evaluate_regressor
from facelib.fit import project_landmarks
from facelib.losses import coefficient_prior, landmark_loss, lighting_prior, photometric_loss
from facelib.morphable import load_open_model
from facelib.morphable.landmarks import LANDMARK_WEIGHTS_68
from facelib.morphable.model import MorphableModel
from facelib.morphable.mirror import CoefficientMirror
from facelib.nets.regressor import GROUPS, Regressor, load_regressor, save_regressor
from facelib.render import Camera, FaceRenderer

POOL_SPLIT = "regressor"
"""The SyntheticFaces split of the training pool (disjoint from the benchmark split)."""

POOL_FORMAT = "facelib.regressor_pool/3"
"""Part of the cache key of :func:`render_pool`, with the SyntheticConfig and torch's version. Bump it
when anything else that decides the pool's pixels changes (the open model, the backgrounds, the renderer)."""

POOL_FACES = SyntheticConfig(max_yaw=75.0, exp_scale=1.0)
"""The training pool's faces: wider than the benchmark's (yaw to +-75 degrees, stronger expressions),
so that the regressor has seen turned heads and open mouths beyond what it is scored on."""

VERTEX_SCALES = {"id": 0.045, "exp": 0.02, "tex": 0.2}
"""The scales of the per-vertex terms: about the root-mean-square vertex error of the mean face on
the pool (identity 4.8 mm and expression 2.1 mm, in model units of decimetres; albedo 0.33, most of
it the first component, skin tone), so that each term starts near 1."""

INIT_RUN_KEYS = ("steps", "images_seen", "seconds", "pool_seconds", "wall_seconds", "seed", "config", "metrics", "torch", "device",
                 "init_run")
"""What a fine-tuning run (``init``) copies from its start's file into its own, under ``init_run``."""

SHAPE_SCALE = 0.035
"""The scale of the aligned shape term: about the mean face's aligned error on the benchmark (3.5 mm)."""


@dataclass
class RegressorTrainConfig:
    """Settings of :func:`train_regressor` (the defaults made the bundled weights).

    Attributes:
        out: where the weights go.
        arch, input_size, pretrained: the :class:`~facelib.nets.Regressor`.
        pool: how many synthetic faces to render once (at ``input_size``) and train on.
        steps: optimiser steps (at most); batch: faces per step.
        minutes: a wall-clock budget for the training loop (None: none). The cosine schedule runs
            on progress = max(step / steps, elapsed / budget), so a run on a busy, shared CPU
            still anneals fully and ends on time, with fewer steps (the file records how many).
        lr, weight_decay: Adam (AdamW when weight_decay > 0) with a cosine schedule and a short warm-up.
        coef_weights: per-group weights of the supervised coefficient term (:data:`~facelib.nets.regressor.GROUPS`).
        vertex_weights: weights of the per-vertex identity, expression and albedo terms (see the module docstring).
        aligned_weight: weight of the aligned shape term (the benchmark's shape error; 0: off).
        landmark_weight, photo_weight, prior_weight, lighting_weight: the other terms.
        photo_size: the side the photometric term renders at (0 turns the term off).
        level: mesh level of the synthetic faces.
        seed: seeds the pool, the initialisation and the batch order.
        init: start from these regressor weights (a fine-tuning run; their arch and input size must
            match) instead of a fresh network; with another ``seed`` than theirs it sees new faces.
        eval_n: benchmark faces measured after training, as ``load_regressor(model=...)`` predicts them
            (each averaged with its mirror image; 0: skip).
        cache: cache the rendered pool on disk (under CACHE_DIR).
        device: where training runs (None: CUDA when available).
    """

    # Not the bundled data/weights/regressor.pt: a new run must not overwrite the shipped weights by default.
    out: str = str(settings.OUT_DIR / "regressor" / "regressor.pt")
    arch: str = "resnet10"
    input_size: int = 112
    pretrained: bool = False
    pool: int = 24000
    steps: int = 9000
    minutes: float | None = 55.0
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    coef_weights: tuple[float, ...] = (0.25, 0.25, 0.5, 4.0, 4.0, 2.0)
    vertex_weights: tuple[float, float, float] = (2.0, 2.0, 1.0)
    aligned_weight: float = 0.0
    landmark_weight: float = 100.0
    photo_weight: float = 0.2
    photo_size: int = 64
    prior_weight: float = 1e-4
    lighting_weight: float = 0.1
    level: int = 0
    seed: int = 0
    init: str | None = None
    eval_n: int = 100
    cache: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        if len(self.vertex_weights) != 3:
            raise ValueError(f"vertex_weights needs three weights (identity, expression, albedo), got {len(self.vertex_weights)}")
        if len(self.coef_weights) != len(GROUPS):
            raise ValueError(f"coef_weights needs one weight per group {GROUPS}, got {len(self.coef_weights)}")
        if self.pool < self.batch or self.batch < 1 or self.steps < 1:
            raise ValueError(f"need steps >= 1 and pool >= batch >= 1, got steps={self.steps}, pool={self.pool}, batch={self.batch}")
        if self.photo_size and self.photo_size < 16:
            raise ValueError(f"photo_size={self.photo_size}: use 0 (off) or at least 16")
        if self.init and self.pretrained:
            raise ValueError("--pretrained starts a fresh backbone from ImageNet and --init starts from a weights file: pass one of them")


# ---- the pool ------------------------------------------------------------------------------------
def render_pool(n: int, size: int, seed: int = 0, level: int = 0, device: str | torch.device | None = None,
                cache: bool = True, verbose: bool = True) -> dict[str, torch.Tensor]:
    """Renders ``n`` synthetic faces once, compactly: the training pool.

    Returns (on the CPU): "image" (n, S, S, 3) uint8, "skin" (n, S, S) uint8, "landmarks" (n, 68, 2)
    in pixels, "visible" (n, 68) bool, and each unknown of :data:`GROUPS` as (n, k) floats.
    """
    from tqdm.auto import tqdm

    path = settings.CACHE_DIR / "regressor_pool" / f"pool-n{n}-s{size}-seed{seed}-level{level}.pt"
    # What else decides the pool's content: the faces' distribution and torch's random streams. A
    # cache made under other ones is stale, although its name and shapes match.
    key = f"{POOL_FORMAT}|{POOL_FACES!r}|torch {torch.__version__.split('+')[0]}"
    if cache and path.is_file():
        try:
            pool = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(pool, dict) or pool.get("image", torch.empty(0)).shape != (n, size, size, 3):
                print(f"regressor pool: the cache {path} holds something else; rendering again")
            elif pool.get("key") != key:
                print(f"regressor pool: the cache {path} was made with another face distribution or torch; rendering again")
            else:
                if verbose:
                    print(f"regressor pool: {n} faces at {size} px from {path}")
                return {k: v for k, v in pool.items() if k != "key"}
        except Exception as err:  # a truncated cache file: render again
            print(f"regressor pool: ignoring the unreadable cache {path} ({type(err).__name__}); rendering again")
    faces = SyntheticFaces(n=n, size=size, seed=seed, level=level, device=device, split=POOL_SPLIT, config=POOL_FACES)
    start = time.perf_counter()
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(faces.batches(64), total=math.ceil(n / 64), desc="rendering the pool", disable=not verbose):
        part = {"image": (batch["image"] * 255).round().to(torch.uint8), "skin": (batch["skin"] > 0.5).to(torch.uint8),
                "landmarks": batch["landmarks"], "visible": batch["landmarks_visible"] > 0.5,
                **{k: batch[k] for k in GROUPS}}
        for k, v in part.items():
            parts.setdefault(k, []).append(v.cpu())
    pool = {k: torch.cat(v) for k, v in parts.items()}
    if verbose:
        seconds = time.perf_counter() - start
        print(f"regressor pool: rendered {n} faces at {size} px in {seconds:.0f} s ({n / seconds:.0f} faces/s)")
    if cache:
        atomic_save(pool | {"key": key}, path)
    return pool


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Label-preserving photometric augmentation of (B, H, W, 3) images in [0, 1].

    Per image: a gain (0.75-1.25), a contrast change, a small colour cast, sometimes a blur (a
    resampling through 50-90 % of the size, like an aligned crop of a small photo), pixel noise.
    Geometry is left alone: shifts, scales and flips would change the pose and shape labels.
    """
    b, h, w, _ = images.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(images.device)

    x = images.permute(0, 3, 1, 2)
    blur = rand(b) < 0.3
    if blur.any():
        side = int(h * (0.5 + 0.4 * float(rand(1))))
        soft = F.interpolate(F.interpolate(x[blur], size=(side, side), mode="bilinear", antialias=True, align_corners=False),
                             size=(h, w), mode="bilinear", align_corners=False)
        x = x.clone()
        x[blur] = soft
    gain = 0.75 + 0.5 * rand(b, 1, 1, 1)
    cast = 1 + 0.08 * (rand(b, 3, 1, 1) * 2 - 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    contrast = 0.8 + 0.4 * rand(b, 1, 1, 1)
    x = ((x - mean) * contrast + mean) * gain * cast
    x = x + 0.02 * rand(b, 1, 1, 1) * torch.randn(x.shape, generator=generator).to(x.device)
    return x.clamp(0, 1).permute(0, 2, 3, 1)


# ---- losses --------------------------------------------------------------------------------------
def regressor_losses(model: MorphableModel, predicted: dict[str, torch.Tensor], truth: dict[str, torch.Tensor],
                     config: RegressorTrainConfig, scales: dict[str, torch.Tensor], camera: Camera,
                     photo: tuple[FaceRenderer, torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The terms of the training loss (see the module docstring), each a scalar.

    Args:
        model: the morphable model. predicted, truth: the unknowns (dicts of :data:`GROUPS`, (B, k)).
        config: the weights. scales: group -> (k,) the regressor's output scales.
        camera: the camera of ``truth["landmarks"]`` ((B, 68, 2) pixels; with ``truth["visible"]`` (B, 68)).
        photo: (renderer at photo_size, (B, s, s, 3) target images, (B, s, s) their skin) or None.
    """
    terms = {f"coef_{g}": ((predicted[g] - truth[g]) / scales[g]).pow(2).mean() for g in GROUPS}
    for group, base in (("id", model.id_base), ("exp", model.exp_base), ("tex", model.tex_base)):
        offsets = ((predicted[group] - truth[group]) @ base.T).view(predicted[group].shape[0], -1, 3)
        terms[f"vertex_{group}"] = offsets.pow(2).sum(-1).mean() / VERTEX_SCALES[group] ** 2
    if config.aligned_weight:
        shape, true_shape = model.shape(predicted["id"], predicted["exp"]), model.shape(truth["id"], truth["exp"])
        terms["shape_aligned"] = aligned_vertex_error(shape, true_shape, model.masks["skin"]).mean() / SHAPE_SCALE
    q = project_landmarks(model, predicted, camera)
    weights = torch.as_tensor(LANDMARK_WEIGHTS_68, device=q.device)[None] * truth["visible"].to(q.dtype)
    terms["landmarks"] = landmark_loss(q, truth["landmarks"], weights, float(camera.image_size[0]))
    if photo is not None:
        renderer, target, skin = photo
        rendering = renderer.render(model.shape(predicted["id"], predicted["exp"]), model.albedo(predicted["tex"]),
                                    predicted["angles"], predicted["translation"], predicted["gamma"])
        terms["photometric"] = photometric_loss(rendering.image, target, rendering.mask * skin)
    terms["prior"] = coefficient_prior(predicted["id"], predicted["exp"], predicted["tex"])
    terms["lighting"] = lighting_prior(predicted["gamma"])
    w = dict(zip(GROUPS, config.coef_weights))
    total = sum(w[g] * terms[f"coef_{g}"] for g in GROUPS) \
        + sum(wv * terms[f"vertex_{g}"] for g, wv in zip(("id", "exp", "tex"), config.vertex_weights)) \
        + config.landmark_weight * terms["landmarks"] \
        + config.prior_weight * terms["prior"] + config.lighting_weight * terms["lighting"]
    if "shape_aligned" in terms:
        total = total + config.aligned_weight * terms["shape_aligned"]
    if "photometric" in terms:
        total = total + config.photo_weight * terms["photometric"]
    terms["total"] = total
    return terms


# ---- training ------------------------------------------------------------------------------------
def train_regressor(config: RegressorTrainConfig | None = None, model: MorphableModel | None = None, verbose: bool = True
                    ) -> Path:
    """Trains a :class:`~facelib.nets.Regressor` on a pool of synthetic faces and saves it.

    Args:
        config: :class:`RegressorTrainConfig`.
        model: the morphable model (default: the open model at ``config.level``).
        verbose: progress bar and summary lines.

    Returns:
        the path of the weights file (``config.out``), written by :func:`~facelib.nets.save_regressor`
        with the settings, steps, images seen, seconds, seed, final losses and benchmark numbers (and,
        fine-tuned from ``config.init``, the start's run as ``init_run``).
    """
    from tqdm.auto import tqdm

    config = config or RegressorTrainConfig()
    say = print if verbose else (lambda *a, **k: None)
    wall = time.perf_counter()
    device = settings.get_device(config.device, verbose=verbose)
    if model is None:
        model = load_open_model(level=config.level)
    model = model.to(device)
    start, lineage = None, {}
    if config.init:  # read and checked before the pool is rendered (minutes), not after
        start = load_regressor(config.init, "cpu", layout=model.layout, verbose=verbose)
        if (start.arch, start.input_size) != (config.arch, config.input_size):
            raise ValueError(f"--init {config.init} is a {start.arch} at {start.input_size} px; "
                             f"pass --arch {start.arch} --input-size {start.input_size} to fine-tune it")
        # the run it started from, so that the file says its whole recipe after --init's file is gone or replaced
        lineage = {"init_run": {k: start.meta[k] for k in INIT_RUN_KEYS if k in start.meta}}
    pool = render_pool(config.pool, config.input_size, config.seed, config.level, device, config.cache, verbose)
    render_seconds = time.perf_counter() - wall

    torch.manual_seed(config.seed)
    if start is None:
        regressor = Regressor(model.layout, config.arch, config.input_size, config.pretrained).to(device).train()
    else:
        regressor = start.to(device).train()
    scales = regressor.decode(torch.ones(1, regressor.scales.numel(), device=device))
    scales = {k: v[0] for k, v in scales.items()}
    decay = [p for n, p in regressor.named_parameters() if p.ndim > 1]
    rest = [p for n, p in regressor.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                                  lr=config.lr)
    warmup = max(1, config.steps // 50)
    budget = config.minutes * 60 if config.minutes else math.inf
    camera = Camera.deng(config.input_size)
    photo_renderer = FaceRenderer.for_model(model, config.photo_size) if config.photo_size else None
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(config.pool, generator=generator)
    cursor, seen = 0, 0
    history: dict[str, list[float]] = {}
    start = time.perf_counter()
    bar = tqdm(range(config.steps), desc=f"training {config.arch} at {config.input_size} px", disable=not verbose)
    steps_done = 0
    for step in bar:
        progress = max(step / config.steps, (time.perf_counter() - start) / budget)
        if progress >= 1:
            say(f"\nthe time budget of {config.minutes} min is used up after {step} of {config.steps} steps")
            break
        for group in optimizer.param_groups:  # warm-up, then cosine annealing over the progress
            group["lr"] = config.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        if cursor + config.batch > config.pool:
            order, cursor = torch.randperm(config.pool, generator=generator), 0
        index = order[cursor:cursor + config.batch]
        cursor += config.batch
        clean = pool["image"][index].to(device, torch.float32) / 255
        truth = {k: pool[k][index].to(device) for k in (*GROUPS, "landmarks", "visible")}
        photo = None
        if photo_renderer is not None:
            small = F.interpolate(clean.permute(0, 3, 1, 2), size=config.photo_size, mode="bilinear", antialias=True,
                                  align_corners=False).permute(0, 2, 3, 1)
            skin = F.interpolate(pool["skin"][index].to(device, torch.float32)[:, None], size=config.photo_size, mode="area")[:, 0]
            photo = (photo_renderer, small, (skin > 0.5).to(small.dtype))
        predicted = regressor(augment(clean, generator))
        terms = regressor_losses(model, predicted, truth, config, scales, camera, photo)
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(f"training diverged at step {step} (loss {terms['total'].item()}): lower --lr")
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(regressor.parameters(), 5.0)
        optimizer.step()
        seen += config.batch
        steps_done = step + 1
        for k, v in terms.items():
            history.setdefault(k, []).append(float(v.detach()))
        if step % 20 == 0 or step == config.steps - 1:
            bar.set_postfix(loss=f"{history['total'][-1]:.3f}", lm=f"{history['landmarks'][-1]:.4f}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
    train_seconds = time.perf_counter() - start
    say(f"trained {steps_done} steps ({seen:,} images, {seen / config.pool:.1f} epochs of the pool) in {train_seconds / 60:.1f} min: "
        f"{seen / train_seconds:.0f} images/s")
    regressor.eval()
    tail = max(1, steps_done // 20)
    final = {k: round(sum(v[-tail:]) / tail, 6) for k, v in history.items()}
    metrics: dict[str, Any] = {"final_losses": final}
    if config.eval_n:  # measured as it is used: each face averaged with its mirror image (load_regressor(model=...))
        regressor.average_mirror(CoefficientMirror(model))
        try:
            metrics["benchmark"] = {**evaluate_regressor(regressor, n=config.eval_n, device=device, verbose=verbose),
                                    "mirror_average": True}
        finally:
            regressor.average_mirror(None)
    path = save_regressor(config.out, regressor, steps=steps_done, images_seen=seen, seconds=round(train_seconds, 1),
                          pool_seconds=round(render_seconds, 1), wall_seconds=round(time.perf_counter() - wall, 1),
                          seed=config.seed, config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
                          metrics=metrics, torch=torch.__version__, device=str(device), **lineage)
    say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) after {(time.perf_counter() - wall) / 60:.1f} min in all")
    return path
