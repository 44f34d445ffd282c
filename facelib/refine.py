"""Texture refinement of one fitted photo: Lin et al.'s TextureGCN run forward with dataset-trained
weights, fine-tuned on the photo, or optimised on the photo alone.

After a fit (:mod:`facelib.fit`) the face has a shape, a pose, a lighting and a 3DMM albedo T that
is smooth: 80 PCA coefficients cannot hold freckles, a beard shadow or make-up. The texture GCNs
(:class:`~facelib.gcn.TextureGCN`) map, per vertex, the coarse albedo T, the photo's colour T_p at
the projected vertex with its confidence c (:mod:`facelib.texture_inputs`), and the photo's
identity embedding f(I) to a refined albedo T' in [0, 1]:

    T' = G_theta(T, T_p, c, f(I))                                          (B, V, 3)

Three ways to get theta:

* **Dataset-trained weights** (:func:`~facelib.gcn.weights.load_texture_gcn`; the course ships
  :func:`~facelib.gcn.weights.bundled_texture_weights`, trained by :mod:`facelib.train.texture`):
  one forward pass, no optimisation. This is the paper's use.
* **Fine-tuning** (``RefineConfig.finetune_steps``): those weights optimised further on the photo
  with the losses below, the rendering terms at full weight from the start.
* **Per-image optimisation** (without weights): a fresh network optimised on this photo alone, with
  the fitted shape, pose and light fixed, on the paper's losses

      L = s1 (L_pix(I, R') + s2 L_id(I, R') + s3 L_adv(R'))  +  s4 (L_vert(T, T') + L_vert(T_p, T~'))

  - L_pix: the masked per-pixel distance over M_proj x M_face (:func:`~facelib.losses.photometric_loss`),
    R' the fitted face rendered with T'.
  - L_id = 1 - cos(f(I), f(R')), R' composited over the photo so that the frozen identity network
    (:class:`~facelib.nets.IdentityEncoder`) sees a whole face; on only with a pretrained network
    (an untrained one's embedding is a fixed random feature map that says nothing about identity).
  - L_vert(T, T') keeps T' near T; L_vert(T_p, T~') makes T' under the fitted light (T~') match the
    photo at the confident vertices, and (the official code's weight 0.3) the shaded 3DMM colour at
    the hidden ones, which the pixel loss never sees.
  - s1 and s4 follow the official code's staircase (:class:`~facelib.losses.Schedule`, "official")
    squeezed into the run: six stages with s1 = 0, 0.2, ..., 1 and s4 = max(1 - s1, 0.2).
  - L_adv is off (s3 = 0): a critic trained on one photo can only memorise it. A critic trained on
    a data set can be passed in (``critic=``) and is used frozen.

  Choices of facelib's for the single photo, where the paper trains on a data set:

  - It starts *at* T: T' = T + (z_theta(x) - z_theta0(x)) / 2, the change of the network's
    pre-tanh output since its initialisation (:meth:`TextureGCN.preactivation`), so step 0 is the
    3DMM albedo rather than an arbitrary colour field, and no channel starts in the tanh's saturation.
  - T_p comes with the confidence of :func:`~facelib.texture_inputs.reliable_samples`, not the 0/1 visibility.
  - The finest level learns at 2.5e-4, the coarser levels and the Decoder at 3e-5
    (:func:`finest_parameters`): detail lives at the finest level, and a network without
    normalisation answers Adam's first steps on its deep layers with a jump of the whole colour field.
  - The learning rate warms up over at least :data:`MIN_WARMUP_STEPS` steps, for the same reason.

Measured effects of each mode are in ``data/README.md`` and the results files the commands write
(``eval-reconstruct``, ``score-photos``), not here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facelib.config import pick
from facelib.gcn.texture import TextureGCN, TextureGCNConfig
from facelib.gcn.weights import HIERARCHY_STEPS, TextureWeightsError, load_texture_gcn
from facelib.losses import Schedule, generator_loss, identity_loss, photometric_loss, projected_color_loss, vertex_loss
from facelib.mesh.hierarchy import MeshHierarchy
from facelib.morphable.model import MorphableModel
from facelib.render.composite import composite
from facelib.render.lighting import shade
from facelib.render.renderer import FaceRenderer, Rendering
from facelib.render.sample import VertexSamples
from facelib.texture_inputs import fidelity_inputs, input_options, reliable_samples

MIN_WARMUP_STEPS = 15
"""The shortest learning-rate warm-up of per-image refinement, whatever ``RefineConfig.steps`` is.

Adam's first steps move every weight by the full learning rate, and this network answers a full
first step with a jump of the whole colour field that takes some 20 steps to undo; a short run must
not end inside it. The defaults (100 and 300 steps) warm up over 15 and 45 steps either way.
"""


FACE_MASK_MODES = ("occluders", "skin", "off")
"""How M_face weighs a "fidelity" network's reading of a photo (:attr:`RefineConfig.face_mask`)."""


@dataclass
class RefineConfig:
    """Settings of :func:`refine` (per-image optimisation; trained weights use only ``gcn``).

    Attributes:
        steps: optimisation steps (fast mode 100, full mode 300). Short runs are safe but do little
            (the warm-up lasts at least :data:`MIN_WARMUP_STEPS`).
        lr: Adam's peak learning rate of the finest-level layers (:func:`finest_parameters`), after
            the warm-up and before the cosine decay. Larger rates leave vertices tinted (channels
            moving apart).
        deep_lr: the same for the coarser levels and the Decoder. They paint large regions at once,
            where the 3DMM already has the colour, and this network (no normalisation layers) answers
            a step of theirs with a jump of the whole face, so they learn about ten times slower.
        warmup: the share of the steps over which the learning rate ramps up from lr / warmup steps
            (at least :data:`MIN_WARMUP_STEPS` steps).
        gcn: the TextureGCN configuration ("paper", "official" or "official-wide") for a fresh network,
            and of a bare state dict given as weights.
        floor: the lowest s4 (the official code's 0.2).
        identity: use L_id: True, False, or "auto" (only with pretrained FaceNet weights).
        hidden_weight: weight of the hidden-vertex part of L_vert(T_p, T~') (the official code's 0.3).
        seed: the seed of the network's initialisation (refinement is reproducible).
        frames: how many snapshots of R' to keep, evenly spread over the steps.
        finetune_steps: with trained weights, optimise them further on this photo for this many
            steps (0, the default: one forward pass, as in the paper).
        finetune_lr: Adam's learning rate of that fine-tuning, for every layer.
        face_mask: how a "fidelity" network's reading of the photo is weighed by M_face (see
            :func:`fidelity_inputs`): "occluders" (the default) only where M_face points at an
            occluder, a large part of the face that is neither skin- nor face-coloured, such as a
            glasses frame or a hat's brim (:func:`~facelib.losses.occluder_gate`); "skin" wherever
            M_face says the photo is not skin, which also drops lips, eyes, shadows and much of the
            detail; "off" not at all (glasses frames and a hat's brim are then painted onto the skin).
            True and False mean "skin" and "off". The network was trained
            without (the synthetic faces have no occluders).
    """

    steps: int = field(default_factory=lambda: int(pick(100, 300)))
    lr: float = 2.5e-4
    deep_lr: float = 3e-5
    warmup: float = 0.15
    gcn: str = "paper"
    floor: float = 0.2
    identity: bool | str = "auto"
    hidden_weight: float = 0.3
    seed: int = 0
    frames: int = 0
    finetune_steps: int = 0
    finetune_lr: float = 5e-5
    face_mask: str | bool = "occluders"

    def __post_init__(self) -> None:
        if self.finetune_steps < 0 or self.finetune_lr <= 0:
            raise ValueError(f"need finetune_steps >= 0 and finetune_lr > 0, got {self.finetune_steps} and {self.finetune_lr}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.lr <= 0 or self.deep_lr < 0 or not 0 < self.warmup <= 1:
            raise ValueError(f"need lr > 0, deep_lr >= 0 and warmup in (0, 1], got {self.lr}, {self.deep_lr}, {self.warmup}")
        if not 0 <= self.floor <= 1:
            raise ValueError(f"floor is a weight in [0, 1], got {self.floor}")
        if isinstance(self.face_mask, bool):
            self.face_mask = "skin" if self.face_mask else "off"
        if self.face_mask not in FACE_MASK_MODES:
            raise ValueError(f"face_mask must be one of {FACE_MASK_MODES} (or True / False), got {self.face_mask!r}")
        if self.identity not in (True, False, "auto"):
            raise ValueError(f"identity must be True, False or 'auto', got {self.identity!r}")


@dataclass
class RefineResult:
    """What :func:`refine` returns.

    Attributes:
        albedo: (B, V, 3) the refined albedo T' in [0, 1], detached.
        coarse: (B, V, 3) the 3DMM albedo T it started from, clamped to [0, 1].
        samples: T_p and the visibility the network read.
        rendering: the fitted face rendered with T'.
        mode: "per-image" (optimised on this photo), "trained" (a checkpoint's weights, one forward pass) or
            "trained + fine-tuned" (those weights optimised further on this photo).
        history: per-step loss terms, weights and total (empty in "trained" mode).
        frames: (step, (B, H, W, 3) R' over the photo) snapshots, rendered from the albedo as it is
            optimised, before the final clamp to [0, 1] (as are the losses in ``history``).
        notes: what was used and left out, in words (FaceNet weights, identity and adversarial terms).
        seconds: wall time of the refinement.
        network: the TextureGCN (optimised or loaded). In "per-image" mode ``albedo`` is T plus
            the change of its pre-tanh output, so calling the network does not give ``albedo``.
    """

    albedo: torch.Tensor
    coarse: torch.Tensor
    samples: VertexSamples
    rendering: Rendering
    mode: str
    history: dict[str, list[float]] = field(default_factory=dict)
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    network: TextureGCN | None = None


# ---- refinement ----------------------------------------------------------------------------------
def finest_parameters(network: TextureGCN) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Splits a TextureGCN's parameters into those at the finest level and the rest.

    The finest level: the Refiner's first block and its last decoder and output blocks (all on the
    face mesh itself) and the CombineNet. The rest (coarser Refiner levels, the Decoder) paint large
    regions at once.
    """
    last = len(network.refiner.decoder) - 1
    names = ("refiner.encoder.0.", f"refiner.decoder.{last}.", "refiner.output.", "combine.")
    if last < 0:  # a Refiner of depth 0 has no decoder blocks
        names = ("refiner.encoder.0.", "refiner.output.", "combine.")
    fine = [q for n, q in network.named_parameters() if n.startswith(names)]
    deep = [q for n, q in network.named_parameters() if not n.startswith(names)]
    return fine, deep


def refine(model: MorphableModel, photo: torch.Tensor, params: dict[str, torch.Tensor], encoder: nn.Module,
           renderer: FaceRenderer | None = None, mask: torch.Tensor | None = None, hierarchy: MeshHierarchy | None = None,
           config: RefineConfig | None = None, weights: str | Path | None = None, critic: nn.Module | None = None,
           callback: Callable[[int, dict[str, float]], None] | None = None) -> RefineResult:
    """Refines the fitted 3DMM albedo of photos with a TextureGCN (see the module docstring).

    Args:
        model: the morphable model the albedo lives on (may be a subdivided one).
        photo: (B, H, W, 3) the aligned photos I in [0, 1].
        params: the fitted unknowns ("id", "exp", "tex", "angles", "translation", "gamma"), as
            :attr:`facelib.fit.FitResult.params`; they stay fixed.
        encoder: the frozen face embedder f, (B, H, W, 3) -> (B, E), usually
            :class:`~facelib.nets.IdentityEncoder`; its embedding feeds the Decoder, and L_id.
        renderer: a renderer of ``model`` at the photo's size (default: made here).
        mask: (B, H, W) M_face, where the photo shows skin (default: everywhere); the pixel loss
            uses M_proj x M_face.
        hierarchy: the mesh hierarchy of ``model`` (default: a quadric one, :meth:`MeshHierarchy.build`;
            pass :func:`texture_hierarchy` for a subdivided model).
        config: :class:`RefineConfig`.
        weights: dataset-trained TextureGCN weights; when given, they are run instead of optimising.
        critic: a dataset-trained WGAN critic for L_adv (frozen; default: no adversarial term).
        callback: called after every step with (step, the logged terms).

    Returns:
        :class:`RefineResult`.
    """
    start = time.perf_counter()
    config = config or RefineConfig()
    if photo.ndim != 4 or photo.shape[-1] != 3:
        raise ValueError(f"photo must be (B, H, W, 3), got {tuple(photo.shape)}")
    b, h, w, _ = photo.shape
    missing = {"id", "exp", "tex", "angles", "translation", "gamma"} - set(params)
    if missing:
        raise ValueError(f"params lack {sorted(missing)}: pass FitResult.params of a fit")
    if params["tex"].shape[0] != b:
        raise ValueError(f"params are for {params['tex'].shape[0]} faces, photo holds {b}")
    renderer = renderer or FaceRenderer.for_model(model, (h, w))
    if tuple(renderer.camera.image_size) != (h, w):
        raise ValueError(f"the renderer draws {renderer.camera.image_size}, the photo is {(h, w)}: "
                         f"use FaceRenderer.for_model(model, {(h, w)})")
    if renderer.triangles.shape != model.triangles.shape:
        raise ValueError("the renderer was made for another mesh: use FaceRenderer.for_model(model, size) with this model")
    compare = torch.ones(b, h, w, device=photo.device) if mask is None else mask.to(photo)
    if compare.shape != (b, h, w):
        raise ValueError(f"mask must be (B, H, W) = {(b, h, w)}, got {tuple(compare.shape)}")
    hierarchy = hierarchy or MeshHierarchy.build(model.mean_shape, model.triangles, (4.0,) * HIERARCHY_STEPS)
    if hierarchy.num_vertices[0] != model.num_vertices:
        raise ValueError(f"the hierarchy's face mesh has {hierarchy.num_vertices[0]:,} vertices, the model {model.num_vertices:,}: "
                         "build it with texture_hierarchy(coarse_model, levels) for the same subdivision level")

    p = {k: v.detach().to(photo.device) for k, v in params.items()}
    shape = model.shape(p["id"], p["exp"])
    coarse = model.albedo(p["tex"]).clamp(0, 1)
    with torch.no_grad():
        fitted = renderer.render(shape, coarse, p["angles"], p["translation"], p["gamma"])
        target_embedding = encoder(photo)
    notes: list[str] = [f"identity network: {getattr(encoder, 'source', type(encoder).__name__)}"]

    def render(albedo: torch.Tensor) -> Rendering:
        return renderer.render(shape, albedo, p["angles"], p["translation"], p["gamma"])

    use_identity = config.identity if config.identity != "auto" else bool(getattr(encoder, "pretrained", True))
    if weights is not None:
        network = load_texture_gcn(weights, hierarchy, config.gcn).to(photo.device)
        trained_with = network.meta.get("identity_network")
        running = getattr(encoder, "name", None)
        if network.decoder is not None and trained_with and running and trained_with != running:
            raise TextureWeightsError(f"{weights} was trained with the identity network {trained_with!r}, whose embedding its "
                                      f"Decoder reads, but {running!r} is in use here: use that identity network, or other weights")
        if network.config.delit:
            # The inputs it was trained on (facelib.train.texture): reliable T_p, de-lit, mirror-filled.
            x = fidelity_inputs(model, renderer, photo, p, None if config.face_mask == "off" else compare,
                                occluders=config.face_mask == "occluders", **input_options(network))
            samples = VertexSamples(x.samples.colors, x.confidence)
            # Fine-tuning compares T_p only where the vertex itself was read, not where its mirror partner was.
            readings = x.samples.visibility
            inputs: tuple[torch.Tensor, ...] = (x.coarse, x.samples.colors, x.confidence, target_embedding, x.delit)
        else:
            # The inputs the paper's network is trained on: T_p with the plain 0/1 visibility.
            samples = renderer.sample_colors(photo, fitted)
            inputs = (coarse, samples.colors, samples.visibility, target_embedding)
            readings = samples.visibility
        source = f"dataset-trained {network.config.name} weights from {weights}"
        if not config.finetune_steps:
            with torch.no_grad():
                albedo = network(*inputs)
                rendering = render(albedo)
            notes.append(f"TextureGCN: {source} (one forward pass)")
            return RefineResult(albedo, coarse, samples, rendering, "trained", notes=notes,
                                seconds=time.perf_counter() - start, network=network)
        # Fine-tuning on this photo, from the trained weights: the network already gives a good
        # albedo, so the rendering terms weigh in at once (s1 = 1 after five steps, s4 at its floor)
        # and every layer learns at one small rate.
        mode, steps = "trained + fine-tuned", config.finetune_steps
        notes.append(f"TextureGCN: {source}, fine-tuned on this photo for {steps} steps")
        network.train()
        optimizer = torch.optim.Adam(network.parameters(), lr=config.finetune_lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        schedule = Schedule(mode="official", steps_per_epoch=1, floor=config.floor)

        def refined() -> torch.Tensor:
            return network(*inputs)
    else:
        mode, steps = "per-image", config.steps
        samples = reliable_samples(renderer, photo, fitted, mask)
        readings = samples.visibility
        network, optimizer, scheduler, schedule, refined = _per_image_network(hierarchy, config, coarse, samples, target_embedding)
    notes.append("L_id: on" if use_identity else "L_id: off (the identity network is untrained here: its embedding carries no identity)")
    notes.append("L_adv: on (a dataset-trained critic, frozen)" if critic is not None else
                 "L_adv: off (a critic cannot learn what photos look like from one photo)")
    if critic is not None:
        critic.eval()
        for q in critic.parameters():
            q.requires_grad_(False)

    history: dict[str, list[float]] = {}
    frames: list[tuple[int, torch.Tensor]] = []
    snap = {round(i * (steps - 1) / max(config.frames - 1, 1)) for i in range(config.frames)} if config.frames else set()
    for step in range(steps):
        albedo = refined()
        rendering = render(albedo)
        s1 = schedule.weights(step)["s1"]
        terms = {
            "pixel": photometric_loss(rendering.image, photo, rendering.mask * compare),
            "vertex": vertex_loss(coarse, albedo),
            "projected": projected_color_loss(samples.colors, shade(albedo, fitted.normals, p["gamma"]), readings,
                                              fitted.colors, config.hidden_weight),
        }
        # FaceNet and the critic cost a forward and a backward each: skip them while s1 is 0.
        if use_identity and s1 > 0:
            terms["identity"] = identity_loss(target_embedding, encoder(composite(rendering, photo)))
        if critic is not None and s1 > 0:
            terms["adversarial"] = generator_loss(critic, composite(rendering, photo))
        total, log = schedule.total(step, terms)
        if not torch.isfinite(total):
            raise FloatingPointError(f"texture refinement diverged at step {step} (loss {total.item()}): lower RefineConfig.lr")
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        scheduler.step()
        for key, value in log.items():
            history.setdefault(key, []).append(value)
        if step in snap:
            frames.append((step, composite(rendering, photo).detach()))
        if callback is not None:
            callback(step, log)
    network.eval()
    with torch.no_grad():
        albedo = refined().clamp(0, 1)
        rendering = render(albedo)
    return RefineResult(albedo, coarse, samples, rendering, mode, history, frames, notes, time.perf_counter() - start, network)


def _per_image_network(hierarchy: MeshHierarchy, config: RefineConfig, coarse: torch.Tensor, samples: VertexSamples,
                       target_embedding: torch.Tensor):
    """A fresh TextureGCN for per-image optimisation: (network, optimiser, scheduler, schedule, T'(.))."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gcn_config = TextureGCNConfig.preset(config.gcn)
        if gcn_config.embedding_dim != target_embedding.shape[1]:
            # The official layout reads the regressor's features too; per image, the identity embedding is what there is.
            gcn_config = gcn_config.with_embedding_dim(target_embedding.shape[1])
        network = TextureGCN(hierarchy, gcn_config).to(coarse.device)
    fine, deep = finest_parameters(network)
    optimizer = torch.optim.Adam([{"params": fine, "lr": config.lr}, {"params": deep, "lr": config.deep_lr}])
    # A linear warm-up (Adam's first steps move every weight by the full learning rate, whatever its
    # gradient), then a cosine decay to 55 % so that the last steps polish rather than wander.
    warmup = max(MIN_WARMUP_STEPS, round(config.warmup * config.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, 1.0) * (0.55 + 0.45 * math.cos(math.pi * step / config.steps)))
    # The official staircase, six "epochs" long: s1 = 0, 0.2, ..., 1 and s4 = max(1 - s1, floor). The
    # floor keeps the L1 vertex terms on to the end: an L1 pull towards T lets large, consistent
    # differences (a mole, lipstick) through and holds back small ones (pixel noise, shading residue).
    schedule = Schedule(mode="official", steps_per_epoch=max(1, math.ceil(config.steps / 6)), floor=config.floor)
    inputs = (coarse, samples.colors, samples.visibility, target_embedding)
    with torch.no_grad():
        initial = network.preactivation(*inputs)

    def refined() -> torch.Tensor:
        # T' = T + (z_theta(x) - z_theta0(x)) / 2, with z the CombineNet's output before its tanh:
        # the refinement starts exactly at the 3DMM albedo and learns a change. A fresh network's own
        # output is an arbitrary colour field, and teaching it to reproduce T first takes hundreds of
        # steps (measured: L1 0.03 after 100 steps on the open model, about the size of the detail
        # to be added). Before the tanh, because at initialisation the tanh is saturated at some
        # vertices and channels: a saturated channel could not follow the other two, and the face
        # came out tinted (measured on grace_hopper: green and magenta patches around the eyes,
        # 317 vertices whose change differed between channels by more than 0.1; 1 after). The 1/2
        # is the slope of T' = (tanh(z) + 1) / 2 at z = 0. Not clamped while optimising: a clamp
        # has no gradient, so a channel that stepped past 0 or 1 once (the 3DMM's red is often at 1)
        # stayed there, with the same tint; the result is clamped at the end.
        return coarse + 0.5 * (network.preactivation(*inputs) - initial)

    return network, optimizer, scheduler, schedule, refined
