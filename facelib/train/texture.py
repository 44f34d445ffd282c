"""Training the dataset-trained TextureGCN that ``reconstruct`` runs forward on a photo (``train-texture``).

The paper's texture comes from GCNs trained over a data set and run forward on the photo. This is
facelib's recipe for one that is useful on a CPU (the "fidelity" network,
:meth:`~facelib.gcn.TextureGCNConfig.fidelity`):

* **Data**: a pool of synthetic faces of their own split (never the benchmark's), each regressed and
  fitted with M_face exactly as ``reconstruct`` does (:mod:`facelib.train.fitted_pool`), so the
  network trains on the fitted shape, light and skin mask it will get, not on the truth. Each step
  draws a batch and one crop size of 224, 176 or 128 px (the course runs 224 in full and 128 in
  fast mode; the photo and M_face are resized, the fit is the same since the camera scales with
  the image).
* **Inputs** (:func:`~facelib.texture_inputs.fidelity_inputs`): T, T_p with its confidence c
  (:func:`~facelib.texture_inputs.reliable_samples`: silhouette, grazing, eyelid and clipped samples get 0; M_face
  is not applied, see there) and D = T_p / E, the photo de-lit by the fitted light, where a vertex
  cannot be read filled from its mirror partner's reading, trusted at ``mirror_weight`` (0.5) times the
  partner's confidence, because a face is only nearly symmetric and the fitted light's errors mirror badly
  (and, with ``denoise``, c lowered where
  D departs from T by no more than the face's median departure:
  :func:`~facelib.texture_inputs.denoise_confidence`; not in the shipped recipe, see ``data/README.md``).
  The output starts at B = T + c (D - T), the de-lit photo where it can be read, and the network
  learns the change (see :class:`~facelib.gcn.TextureGCNConfig`, ``delit``).
* **Losses**, Lin et al.'s (their ramp of s1 and s4 is skipped by default, see ``TextureTrainConfig.ramp``):

      L = s1 (L_pix(I, R') + s2 L_id(I, R')) + s4 (w_T L_vert(T, T') + L_vert(T_p, T~'))  +  w_a L_albedo

  L_pix inside M_proj x M_face, L_id with the identity network :class:`~facelib.nets.IdentityEncoder`
  picks (s2 = 0.2, every ``identity_every``-th step: it costs a forward and backward of the
  network), L_vert(T_p, T~') at the vertices read themselves, weighted by their own confidence, not the
  mirror-filled one (0.3 x the shaded 3DMM at the others), and
  one term the paper cannot have on real photos: **L_albedo**, where the true albedo is known (the
  synthetic faces), the scale-invariant L1 distance to it over the skin (each face's per-channel
  gain fitted first, since albedo and light are known only up to one). The pixel loss alone cannot
  tell the fitted light's errors from albedo: it paints shading residue into the skin. The truth
  can, and a learned network can carry what it learned to photos that have none.
* No adversarial term: the critic adds five critic steps per step, and the trainer of lesson 05
  measured no gain from it at CPU scale.

Checkpoints are written atomically every ``checkpoint_every`` steps and at the end; ``resume=True``
goes on from the last one (model, optimiser, step, random state), and refuses a checkpoint whose inputs were
made otherwise (``denoise``, ``mirror_weight``: the network learned on them). The final weights are written
with :func:`~facelib.gcn.weights.save_texture_gcn` in fp16 with the recipe, the data and the time.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from facelib.evaluate import DETAIL_THRESHOLD, psnr
from facelib.evaluate.metrics import scale_invariant_error
from facelib.gcn.texture import TextureGCN, TextureGCNConfig, parameter_count
from facelib.gcn.weights import save_texture_gcn, texture_hierarchy
from facelib.losses import identity_loss, photometric_loss, projected_color_loss, vertex_loss
from facelib.morphable import load_open_model
from facelib.nets import IdentityEncoder
from facelib.render import FaceRenderer
from facelib.render.composite import composite
from facelib.render.lighting import shade
from facelib.texture_inputs import CLIP_LEVEL, fidelity_inputs, input_options, texture_inputs
from facelib.train.checkpoint import atomic_save
from facelib.train.fitted_pool import POOL_FORMAT, POOL_SPLIT, PoolSpec, build_pool, load_pool
from facelib.files import atomic_write_text

TRAIN_CHECKPOINT_FORMAT = "facelib.texture_train/1"


@dataclass
class TextureTrainConfig:
    """The recipe of :func:`train_texture` (the defaults made the shipped ``data/weights/texture_gcn.pt``).

    Attributes:
        pool: the fitted pool to train on (:class:`~facelib.train.fitted_pool.PoolSpec`).
        steps: optimisation steps at most.
        minutes: wall-time budget (0: none). The schedule (s1, s4, the learning rate's decay) follows
            progress = max(step / steps, minutes passed / minutes), so a run that the budget ends
            early still ends its schedule, with the pixel term dominant and the learning rate low.
        batch: faces per step.
        sizes: crop sizes drawn per step (the pool's size first).
        lr: Adam's peak learning rate (linear warm-up over ``warmup`` steps, cosine decay to 10 %).
        combine_lr_scale: the CombineNet's learning rate is this times ``lr`` (it starts at zero and
            holds the direct path from the de-lit photo to the output).
        ramp: the share of the run over which s1 ramps 0 -> 1 and s4 1 -> floor (Lin et al.'s schedule);
            0, the default: s1 = 1 and s4 = floor from the first step. The ramp teaches a fresh
            network to copy T and T_p before the rendering terms take over; this network starts
            there, and measured with the ramp (0.5), the vertex term L_vert(T_p, T~') at s4 near 1
            pinned it to its start: 300 steps left every held-out score where it began.
        gcn: the TextureGCN preset.
        s2: weight of L_id inside the s1 group (Lin et al.: 0.2).
        identity_every: compute L_id every this many steps (0: never).
        floor: the lowest s4.
        coarse_weight: w_T, the weight of L_vert(T, T') inside the s4 group.
        albedo_weight: w_a, the weight of the supervised scale-invariant albedo term (0: off; ``data/README.md``
            says why the shipped run used 1, not 2).
        hidden_weight: the hidden-vertex share of L_vert(T_p, T~') (the official code's 0.3).
        seed: model initialisation and batch order.
        checkpoint_every: steps between checkpoints (each also scores the held-out faces into ``holdout.csv``).
        holdout: the pool's last faces, left out of training and scored at every checkpoint
            (:func:`holdout_scores`: detail-band scale-invariant error and re-rendering PSNR of the
            3DMM, the de-lit photo and the network).
        denoise: the network's ``denoise`` (:class:`~facelib.gcn.TextureGCNConfig`; 0: the shipped recipe).
        mirror_weight: the network's ``mirror_weight`` (:class:`~facelib.gcn.TextureGCNConfig`): how much a
            vertex's mirror partner's reading is trusted where the vertex has no reading of its own (1: as much as
            the partner's own; ``data/README.md`` has the measurements behind 0.5).
    """
    pool: PoolSpec = field(default_factory=PoolSpec)
    steps: int = 3000
    minutes: float = 35.0
    batch: int = 8
    sizes: tuple[int, ...] = (224, 176, 128)
    lr: float = 5e-4
    combine_lr_scale: float = 4.0
    ramp: float = 0.0
    warmup: int = 50
    gcn: str = "fidelity"
    s2: float = 0.2
    identity_every: int = 2
    floor: float = 0.2
    coarse_weight: float = 0.2
    albedo_weight: float = 1.0
    hidden_weight: float = 0.3
    seed: int = 0
    checkpoint_every: int = 100
    holdout: int = 16
    denoise: float = 0.0
    mirror_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"need steps >= 1 and batch >= 1, got {self.steps} and {self.batch}")
        if not self.sizes or min(self.sizes) < 64:
            raise ValueError(f"sizes must be crop sizes of at least 64 px, got {self.sizes}")
        if self.denoise < 0:
            raise ValueError(f"denoise must be >= 0, got {self.denoise}")
        if not 0 <= self.mirror_weight <= 1:
            raise ValueError(f"mirror_weight must be in [0, 1], got {self.mirror_weight}")


def scale_invariant_l1(albedo: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean |g T' - T*| over weighted vertices, g the per-face, per-channel least-squares gain (held fixed).

    Args:
        albedo: (B, V, 3) T'. truth: (B, V, 3) T*. weights: (V,) or (B, V) vertex weights.
    """
    w = weights.to(albedo).expand(albedo.shape[:2]).unsqueeze(-1)
    with torch.no_grad():
        gain = (w * albedo * truth).sum(1, keepdim=True) / (w * albedo * albedo).sum(1, keepdim=True).clamp(min=1e-8)
    return ((gain * albedo - truth).abs() * w).sum() / (3 * w.sum()).clamp(min=1.0)


class _Renderers:
    """One renderer per crop size, of the level-``level`` model (made once)."""

    def __init__(self, model) -> None:
        self.model, self.cache = model, {}

    def __call__(self, size: int):

        if size not in self.cache:
            self.cache[size] = FaceRenderer.for_model(self.model, size)
        return self.cache[size]


class _InputCache:
    """What the texture stage reads of each pool face at each crop size (:func:`~facelib.texture_inputs.texture_inputs`),
    computed the first time a batch asks for it: the fit does not change, so neither do they."""

    KEYS = ("shape", "coarse", "colors", "read", "delit", "confidence", "normals", "shaded_3dmm")

    def __init__(self, model, renderers: _Renderers, pool: dict, options: dict[str, float]) -> None:
        # options: the network's input_options (its denoise and mirror weight).
        self.model, self.renderers, self.pool, self.items, self.options = model, renderers, pool, {}, options

    def __call__(self, idx: torch.Tensor, size: int, photo: torch.Tensor, m_face: torch.Tensor) -> dict[str, torch.Tensor]:

        missing = [j for j, i in enumerate(idx.tolist()) if (i, size) not in self.items]
        if missing:
            rows = torch.tensor(missing)
            params = {k: v[idx[rows]] for k, v in self.pool["params"].items()}
            x = fidelity_inputs(self.model, self.renderers(size), photo[rows], params, **self.options)
            values = (x.shape, x.coarse, x.samples.colors, x.samples.visibility, x.delit, x.confidence, x.fitted.normals,
                      x.fitted.colors)
            for row, j in enumerate(missing):
                self.items[(int(idx[j]), size)] = tuple(v[row].clone() for v in values)
        stacked = zip(*(self.items[(i, size)] for i in idx.tolist()))
        return {k: torch.stack(v) for k, v in zip(self.KEYS, stacked)}


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, size, size, C), antialiased (a smaller photo, as a smaller crop would be)."""
    if images.shape[1] == size:
        return images
    x = F.interpolate(images.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1)


@torch.no_grad()
def holdout_scores(network, model, renderers: _Renderers, inputs: "_InputCache", pool: dict, indices: torch.Tensor,
                   embeddings: torch.Tensor, size: int) -> dict[str, dict[str, float]]:
    """Detail-band scale-invariant albedo error and PSNR inside M_proj x M_face, for the 3DMM, the de-lit photo
    and the network, on pool faces (at ``size`` px). Means over the faces."""

    photo = _resize(pool["image"][indices].float() / 255, size)
    m_face = _resize(pool["m_face"][indices].float()[..., None] / 255, size)[..., 0]
    params = {k: v[indices] for k, v in pool["params"].items()}
    x = inputs(indices, size, photo, m_face)
    truth, base = pool["albedo"][indices].float(), pool["albedo_base"][indices].float()
    skin = model.masks["skin"].float().expand(truth.shape[:2])
    detail = skin * ((truth - base).abs().mean(-1) > DETAIL_THRESHOLD).float()

    c = x["confidence"].unsqueeze(-1)
    albedos = {"3dmm": x["coarse"], "delit": texture_inputs(model, renderers(size), photo, params, m_face).yardstick(),
               "start": (x["coarse"] + c * (x["delit"] - x["coarse"])).clamp(0, 1),
               "gcn": network(x["coarse"], x["colors"], x["confidence"], embeddings[indices], x["delit"])}
    out = {}
    for name, albedo in albedos.items():
        r = renderers(size).render(x["shape"], albedo, params["angles"], params["translation"], params["gamma"])
        out[name] = {"detail_si": float(scale_invariant_error(albedo, truth, skin, detail).nanmean()),
                     "face_si": float(scale_invariant_error(albedo, truth, skin, skin).nanmean()),
                     "psnr": float(psnr(r.image.clamp(0, 1), photo, r.mask * m_face).nanmean())}
    return out


def train_texture(out: str | Path, config: TextureTrainConfig | None = None, resume: bool = False,
                  weights_out: str | Path | None = None, verbose: bool = True) -> Path:
    """Trains the "fidelity" TextureGCN on the fitted pool (built first when missing).

    Args:
        out: the run folder (``checkpoint.pt``, ``log.csv``, ``texture_gcn.pt``).
        config: the recipe.
        resume: go on from ``out/checkpoint.pt``.
        weights_out: where to write the final fp16 weights (default ``out/texture_gcn.pt``).
        verbose: print progress.

    Returns:
        The path of the final weights.

    Raises:
        FloatingPointError: a loss became NaN or infinite (the last checkpoint is kept).
    """
    config = config or TextureTrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = print if verbose else (lambda *a, **k: None)
    spec = config.pool
    build_pool(spec, verbose=verbose)
    pool = load_pool(spec)
    n = pool["image"].shape[0] - config.holdout
    if n < 1:
        raise ValueError(f"the pool has {n + config.holdout} faces, which the holdout of {config.holdout} leaves none of to train on")
    held_out = torch.arange(n, n + config.holdout)
    base = load_open_model(level=0, verbose=False)
    hierarchy = texture_hierarchy(base, spec.level)
    model = base.subdivided(spec.level)
    renderers = _Renderers(model)
    skin = model.masks["skin"].float()

    encoder = IdentityEncoder(download=False, allow_untrained=True)
    pretrained = bool(getattr(encoder, "pretrained", False))
    identity_name = str(getattr(encoder, "name", "unknown"))
    say(f"train-texture: identity network: {getattr(encoder, 'source', type(encoder).__name__)}")
    with torch.no_grad():  # the photo's embedding does not change: once per pool face
        embeddings = torch.cat([encoder(pool["image"][i:i + 16].float() / 255) for i in range(0, len(pool["image"]), 16)])
    use_identity = pretrained and config.identity_every > 0 and config.s2 > 0
    gcn_config = TextureGCNConfig.preset(config.gcn).with_embedding_dim(embeddings.shape[1])
    if config.denoise:
        gcn_config = dataclasses.replace(gcn_config, denoise=config.denoise)
    if gcn_config.delit:
        gcn_config = dataclasses.replace(gcn_config, mirror_weight=config.mirror_weight)
    elif config.mirror_weight != TextureTrainConfig.mirror_weight:
        raise ValueError(f"mirror_weight={config.mirror_weight}: only a network that reads the de-lit photo ('fidelity') "
                         f"is mirror-filled, and {config.gcn!r} does not")
    if not pretrained:
        # A random feature map decoded into colour is noise the network has to learn to ignore.
        gcn_config = gcn_config.ablated(decoder=False)
        say("train-texture: the identity network is untrained here, so the Decoder (which reads its embedding) is left out")
    torch.manual_seed(config.seed)
    network = TextureGCN(hierarchy, gcn_config)
    made_with = input_options(network)  # how its inputs are made: the cache, the checkpoint and refine agree
    inputs = _InputCache(model, renderers, pool, made_with)
    # The CombineNet starts at zero and holds the direct path from the de-lit photo: it learns faster.
    combine = list(network.combine.parameters())
    rest = [q for q in network.parameters() if all(q is not c for c in combine)]
    optimizer = torch.optim.Adam([{"params": combine, "lr_scale": config.combine_lr_scale}, {"params": rest, "lr_scale": 1.0}],
                                 lr=config.lr)

    def progress(step: int, seconds: float) -> float:
        return max(step / config.steps, seconds / (60 * config.minutes) if config.minutes else 0.0)

    def lr_factor(step: int, done: float) -> float:
        warm = min(1.0, (step + 1) / max(config.warmup, 1))
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))

    generator = torch.Generator().manual_seed(config.seed)
    start_step, seconds_before = 0, 0.0
    checkpoint = out / "checkpoint.pt"
    if resume:
        if not checkpoint.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}; start without --resume")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("format") != TRAIN_CHECKPOINT_FORMAT or state.get("identity_network") != identity_name:
            raise ValueError(f"{checkpoint} is not a train-texture checkpoint of this set-up (format {state.get('format')}, "
                             f"identity network {state.get('identity_network')} vs {identity_name} here)")
        # A checkpoint from before these were recorded was trained on the plain inputs (full mirror fill, no denoising).
        made = input_options(None) | dict(state.get("inputs", {}))
        if made != made_with:
            raise ValueError(f"{checkpoint} was trained on inputs made with {made}, this run makes them with {made_with}: "
                             "resume with the same --denoise and --mirror-weight, or start a new run folder")
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start_step, seconds_before = int(state["step"]), float(state["seconds"])
        say(f"train-texture: resumed at step {start_step} from {checkpoint}")
    say(f"train-texture: {n} fitted faces ({POOL_SPLIT} split, seed {spec.seed}, {spec.size} px), mesh level {spec.level} "
        f"({model.num_vertices:,} vertices); {gcn_config.name} network, {parameter_count(network):,} parameters; "
        f"{config.steps} steps of {config.batch}; L_id {'on' if use_identity else 'off'}")

    def save_checkpoint(step: int, seconds: float) -> None:
        atomic_save({"format": TRAIN_CHECKPOINT_FORMAT, "model": network.state_dict(), "optimizer": optimizer.state_dict(),
                     "generator": generator.get_state(), "step": step, "seconds": seconds,
                     "identity_network": identity_name, "config": repr(config),
                     "inputs": made_with}, checkpoint)

    log = out / "log.csv"
    holdout_log = out / "holdout.csv"  # the held-out faces' scores at each checkpoint (see holdout_scores)
    if not resume or not log.is_file():
        atomic_write_text(log, "step,seconds,size,s1,s4,pixel,identity,vertex,projected,albedo,total\n")
    if config.holdout and (not resume or not holdout_log.is_file()):
        atomic_write_text(holdout_log, "step,albedo,detail_si,face_si,psnr\n")
    begin = time.perf_counter()
    step = start_step
    network.train()
    while True:
        elapsed = seconds_before + time.perf_counter() - begin
        done = progress(step, elapsed)
        if done >= 1.0:
            if step < config.steps:
                say(f"train-texture: the {config.minutes}-minute budget ended at step {step} of {config.steps}")
            break
        for group in optimizer.param_groups:
            group["lr"] = config.lr * group["lr_scale"] * lr_factor(step, done)
        idx = torch.randint(0, n, (config.batch,), generator=generator)
        size = config.sizes[int(torch.randint(0, len(config.sizes), (1,), generator=generator))]
        photo = _resize(pool["image"][idx].float() / 255, size)
        m_face = _resize(pool["m_face"][idx].float()[..., None] / 255, size)[..., 0]
        params = {k: v[idx] for k, v in pool["params"].items()}
        renderer = renderers(size)
        x = inputs(idx, size, photo, m_face)
        albedo = network(x["coarse"], x["colors"], x["confidence"], embeddings[idx], x["delit"])
        rendering = renderer.render(x["shape"], albedo, params["angles"], params["translation"], params["gamma"])
        s1 = min(1.0, done / config.ramp) if config.ramp > 0 else 1.0
        s4 = max(1.0 - s1, config.floor)
        terms = {
            "pixel": photometric_loss(rendering.image, photo, rendering.mask * m_face),
            "vertex": vertex_loss(x["coarse"], albedo),
            # Weighted by each vertex's own reading: the mirror fill gives D and the confidence to vertices
            # whose T_p is 0 (unread), which would otherwise pull their shaded albedo towards black.
            "projected": projected_color_loss(x["colors"], shade(albedo, x["normals"], params["gamma"]),
                                              x["read"], x["shaded_3dmm"], config.hidden_weight),
            "albedo": scale_invariant_l1(albedo, pool["albedo"][idx].float(), skin),
        }
        total = s1 * terms["pixel"] + s4 * (config.coarse_weight * terms["vertex"] + terms["projected"]) \
            + config.albedo_weight * terms["albedo"]
        if use_identity and s1 > 0 and step % config.identity_every == 0:
            terms["identity"] = identity_loss(embeddings[idx], encoder(composite(rendering, photo)))
            total = total + s1 * config.s2 * terms["identity"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"train-texture: the loss is {total.item()} at step {step}; the last checkpoint "
                                     f"({checkpoint}) is intact: resume with a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        step += 1
        elapsed = seconds_before + time.perf_counter() - begin
        with log.open("a") as handle:
            handle.write(f"{step},{elapsed:.1f},{size},{s1:.3f},{s4:.3f},{terms['pixel'].item():.5f},"
                         f"{terms['identity'].item() if 'identity' in terms else float('nan'):.5f},{terms['vertex'].item():.5f},"
                         f"{terms['projected'].item():.5f},{terms['albedo'].item():.5f},{total.item():.5f}\n")
        if verbose and (step % 25 == 0 or step == 1):
            say(f"  step {step:>5}/{config.steps}  {elapsed / 60:5.1f} min  {step * config.batch / max(elapsed, 1e-9):4.1f} img/s  "
                f"pixel {terms['pixel'].item():.4f}  albedo {terms['albedo'].item():.4f}  total {total.item():.4f}", flush=True)
        if step % config.checkpoint_every == 0:
            save_checkpoint(step, elapsed)
            if config.holdout:
                network.eval()
                scores = holdout_scores(network, model, renderers, inputs, pool, held_out, embeddings, spec.size)
                network.train()
                with holdout_log.open("a") as handle:
                    handle.writelines(f"{step},{k},{v['detail_si']:.5f},{v['face_si']:.5f},{v['psnr']:.3f}\n" for k, v in scores.items())
                say("  held out: " + "  ".join(f"{k} detail SI {v['detail_si']:.4f} face SI {v['face_si']:.4f} PSNR {v['psnr']:.2f}"
                                               for k, v in scores.items()), flush=True)
    elapsed = seconds_before + time.perf_counter() - begin
    save_checkpoint(step, elapsed)
    network.eval()
    weights_out = Path(weights_out) if weights_out is not None else out / "texture_gcn.pt"
    save_texture_gcn(weights_out, network, half=True, recipe=repr(dataclasses.replace(config)), steps=step,
                     minutes=round(elapsed / 60, 1), images=step * config.batch, pool=str(spec), split=POOL_SPLIT,
                     pool_format=POOL_FORMAT, clip_level=CLIP_LEVEL, level=spec.level, identity_network=identity_name)
    say(f"train-texture: {step} steps in {elapsed / 60:.1f} min; weights -> {weights_out}")
    return weights_out
