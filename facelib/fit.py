"""Analysis by synthesis: fit a morphable model to one photo by gradient descent through the renderer.

The unknowns are the 3DMM coefficients (identity, expression, albedo), the pose (three Euler
angles, a translation) and the SH lighting. Each step renders the current guess, compares it with
the photo, and lets autograd move every unknown a little:

    L = w_pix L_pix(I, R) + w_lm L_lm(q, q') + w_coef L_coef(c) + w_gamma L_gamma(gamma)

(:mod:`facelib.losses` holds each term.) Landmarks pin the geometry down, because the photometric
term alone has no gradient across the silhouette; the photometric term then does the rest.
The fit runs in two stages: for the first ``landmark_steps`` the photometric term is off and the
landmarks and priors alone move the unknowns (the colour comparison is meaningless while the face
is misplaced); then everything together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from facelib.losses import coefficient_prior, landmark_loss, lighting_prior, photometric_loss, skin_mask, ycbcr
from facelib.morphable.landmarks import LANDMARK_WEIGHTS_68, five_from_68
from facelib.morphable.model import MorphableModel
from facelib.render.composite import composite
from facelib.render.camera import Camera
from facelib.render.renderer import FaceRenderer, Rendering

UNKNOWNS = ("id", "exp", "tex", "angles", "translation", "gamma")


@dataclass
class FitConfig:
    """Settings of :func:`fit` (the defaults suit a 224 x 224 aligned face).

    Attributes:
        steps: gradient steps in all.
        landmark_steps: the first steps use the landmark and prior terms only.
        lr: Adam's learning rate.
        photo_weight, landmark_weight, coef_weight, lighting_weight: the loss weights.
        prior_weights: relative weights of identity, expression and albedo in the coefficient prior
            (albedo is cheap, so the skin colour goes into the albedo rather than into the light).
        light_strength: the magnitude term of :func:`~facelib.losses.lighting_prior`.
        unknowns: which of ``UNKNOWNS`` to optimise (the others stay at their start values).
        frames: how many snapshots of the rendering to keep, evenly spread over the steps.
    """

    steps: int = 200
    landmark_steps: int = 40
    lr: float = 0.03
    photo_weight: float = 1.9
    landmark_weight: float = 80.0
    coef_weight: float = 2e-3
    prior_weights: tuple[float, float, float] = (1.0, 0.8, 0.05)
    light_strength: float = 0.5
    lighting_weight: float = 5.0
    unknowns: tuple[str, ...] = UNKNOWNS
    frames: int = 6


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: the fitted unknowns ("id", "exp", "tex", "angles", "translation", "gamma"), detached.
        rendering: the final rendering.
        history: per-step values of each loss term and of the total.
        frames: (step, (B, H, W, 3) rendering over the target) snapshots.
    """

    params: dict[str, torch.Tensor]
    rendering: Rendering
    history: dict[str, list[float]] = field(default_factory=dict)
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    def composite(self, target: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) the rendering pasted over the target where the face covers it."""
        return composite(self.rendering, target).detach()


def initial_params(model: MorphableModel, batch: int) -> dict[str, torch.Tensor]:
    """The start of a fit: the mean face, frontal, centred, lit by the ambient term alone."""
    sizes = {"id": model.layout.n_id, "exp": model.layout.n_exp, "tex": model.layout.n_tex, "angles": 3,
             "translation": 3, "gamma": 27}
    return {name: torch.zeros(batch, k, device=model.device) for name, k in sizes.items()}


def project_landmarks(model: MorphableModel, params: dict[str, torch.Tensor], camera: Camera) -> torch.Tensor:
    """(B, 68, 2) the 68 landmarks of the faces ``params`` describe, in pixels of ``camera``'s image."""
    shape = model.shape(params["id"], params["exp"])[:, model.landmarks]
    return camera.project(camera.transform(shape, params["angles"], params["translation"]))[..., :2]


def render_params(model: MorphableModel, renderer: FaceRenderer, params: dict[str, torch.Tensor]) -> Rendering:
    """Renders a set of unknowns (the dictionary layout of :func:`initial_params`)."""
    shape = model.shape(params["id"], params["exp"])
    albedo = model.albedo(params["tex"])
    return renderer.render(shape, albedo, params["angles"], params["translation"], params["gamma"])


def _model_landmarks(rendering: Rendering, count: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if rendering.landmarks is None:
        raise ValueError("the model has no landmarks; a fit needs them")
    if count == 68:
        return rendering.landmarks, torch.as_tensor(LANDMARK_WEIGHTS_68, dtype=rendering.landmarks.dtype)
    if count == 5:
        return five_from_68(rendering.landmarks), None
    raise ValueError(f"target landmarks must be 5 (MTCNN: eyes, nose tip, mouth corners) or 68 points, got {count}; "
                     "for other landmark sets, select the matching model vertices first")


def fit(model: MorphableModel, target: torch.Tensor, landmarks: torch.Tensor, renderer: FaceRenderer | None = None,
        mask: torch.Tensor | None = None, config: FitConfig | None = None, init: dict[str, torch.Tensor] | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None,
        photometric: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = photometric_loss,
        prior_mean: dict[str, torch.Tensor] | None = None) -> FitResult:
    """Fits the model to target images by analysis by synthesis.

    Args:
        model: the morphable model.
        target: (B, H, W, 3) photos (aligned crops) in [0, 1].
        landmarks: (B, 5, 2) or (B, 68, 2) detected landmarks in pixels of ``target``.
        renderer: a renderer at the target's size (default: ``FaceRenderer.for_model(model, H)``).
        mask: (B, H, W) where the photo may be compared (default: everywhere); multiplied by the
            rendering's coverage at every step.
        config: :class:`FitConfig`.
        init: start values for some unknowns (the rest start from :func:`initial_params`).
        callback: called after every step with (step, the loss terms).
        photometric: the photometric term (rendered, target, mask) -> scalar (lesson 03 passes the
            learner's own).
        prior_mean: where the coefficient prior is centred, per coefficient group ("id", "exp",
            "tex"; default: zero, the mean face). Centred on a regressor's guess, the prior is the
            regressor's belief rather than the mean face's: it no longer pulls a smile or a narrow
            face back towards the average where the landmarks cannot say otherwise.

    Returns:
        :class:`FitResult`.
    """
    config = config or FitConfig()
    if target.ndim != 4 or target.shape[-1] != 3:
        raise ValueError(f"target must be (B, H, W, 3), got {tuple(target.shape)}")
    b, h, w, _ = target.shape
    if landmarks.shape[0] != b or landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must be (B={b}, K, 2), got {tuple(landmarks.shape)}")
    unknown = set(config.unknowns) - set(UNKNOWNS)
    if unknown:
        raise ValueError(f"unknowns must be among {UNKNOWNS}, got {sorted(unknown)}")
    renderer = renderer or FaceRenderer.for_model(model, (h, w))
    if tuple(renderer.camera.image_size) != (h, w):
        raise ValueError(f"the renderer draws {renderer.camera.image_size}, the target is {(h, w)}: "
                         f"use FaceRenderer.for_model(model, {(h, w)})")
    if not target.is_floating_point() or float(target.min()) < 0 or float(target.max()) > 1:
        raise ValueError("target must be float images with values in [0, 1] (divide 8-bit images by 255)")
    if target.device != model.device or landmarks.device != model.device:
        raise ValueError(f"model ({model.device}), target ({target.device}) and landmarks ({landmarks.device}) must be on "
                         "one device: move them with .to(device) / model.to(device)")
    if init is not None and set(init) - set(UNKNOWNS):
        raise ValueError(f"init has unknown keys {sorted(set(init) - set(UNKNOWNS))}; use some of {UNKNOWNS}")
    params = initial_params(model, b)
    for name, value in (init or {}).items():
        params[name] = value.detach().clone().to(model.device)
    for name in config.unknowns:
        params[name].requires_grad_(True)
    centre = {k: torch.zeros_like(params[k]) for k in ("id", "exp", "tex")}
    for name, value in (prior_mean or {}).items():
        if name not in centre or value.shape != centre[name].shape:
            raise ValueError(f"prior_mean holds {name!r} {tuple(value.shape)}; use 'id', 'exp' or 'tex' shaped like the unknowns")
        centre[name] = value.detach().to(model.device)
    optimizer = torch.optim.Adam([params[n] for n in config.unknowns], lr=config.lr)
    compare = torch.ones(b, h, w, device=target.device) if mask is None else mask
    history: dict[str, list[float]] = {k: [] for k in ("photometric", "landmarks", "coefficients", "lighting", "total")}
    frames: list[tuple[int, torch.Tensor]] = []
    snap = {round(i * (config.steps - 1) / max(config.frames - 1, 1)) for i in range(config.frames)} if config.frames else set()
    rendering = render_params(model, renderer, params)
    for step in range(config.steps):
        rendering = render_params(model, renderer, params)
        q, weights = _model_landmarks(rendering, landmarks.shape[1])
        terms = {
            "photometric": photometric(rendering.image, target, rendering.mask * compare),
            "landmarks": landmark_loss(q, landmarks, weights, float(min(h, w))),
            "coefficients": coefficient_prior(params["id"] - centre["id"], params["exp"] - centre["exp"],
                                              params["tex"] - centre["tex"], config.prior_weights),
            "lighting": lighting_prior(params["gamma"], config.light_strength),
        }
        photo_on = step >= config.landmark_steps
        total = (config.photo_weight * terms["photometric"] * photo_on + config.landmark_weight * terms["landmarks"]
                 + config.coef_weight * terms["coefficients"] + config.lighting_weight * terms["lighting"])
        if not torch.isfinite(total):
            raise FloatingPointError(f"the fit diverged at step {step} (loss {total.item()}): lower FitConfig.lr")
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        values = {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}
        for k, v in values.items():
            history[k].append(v)
        if step in snap:
            frames.append((step, composite(rendering, target).detach()))
        if callback is not None:
            callback(step, values)
    with torch.no_grad():
        rendering = render_params(model, renderer, params)
    return FitResult({k: v.detach() for k, v in params.items()}, rendering, history, frames)


def bare_skin(model: MorphableModel) -> torch.Tensor:
    """(V,) bool: the skin vertices less lips and brows, whose colour is the skin tone."""
    skin = model.masks["skin"].bool()
    none = torch.zeros_like(skin)
    return skin & ~model.masks.get("lips", none).bool() & ~model.masks.get("brows", none).bool()


def rendered_vertex_mask(vertices: torch.Tensor, result: FitResult) -> torch.Tensor:
    """(V,) a per-vertex mask -> (B, H, W) where it renders in the fit's image, interpolated over the triangles."""
    weights = vertices.to(result.rendering.image)[None, :, None].expand(result.rendering.image.shape[0], -1, -1)
    return result.rendering.fragments.interpolate(weights)[..., 0] * result.rendering.mask


def skin_region(model: MorphableModel, result: FitResult) -> torch.Tensor:
    """(B, H, W) where the fitted model's skin renders (:func:`bare_skin`), as in lesson 04."""
    return rendered_vertex_mask(bare_skin(model), result)


LIPS_MARGIN_PX = 4.0
"""How far (pixels at 224 px, scaled with the crop) the refit's mask reaches beyond the fitted lips."""

LIPS_REDNESS = (0.01, 0.02)
"""Cr (BT.601 chroma) above the skin's median: a pixel is not lips below the first, fully lips from the second."""

LIPS_BRIGHTNESS = 0.05
"""Y (luma) above the skin's median from which a pixel is too bright to be lips (teeth), linearly from the median."""


def lips_region(model: MorphableModel, result: FitResult, photo: torch.Tensor | None = None, skin: torch.Tensor | None = None,
                margin: float = LIPS_MARGIN_PX) -> torch.Tensor:
    """(B, H, W) in [0, 1]: where the fitted model's lips render, grown by ``margin`` pixels at 224 px.

    M_face is a skin colour model, so it leaves out the lips; a refit on M_face alone no longer
    sees where the mouth is and lets a smile relax back towards a closed mouth. The margin covers
    lips the first fit placed a little off. With ``photo`` and ``skin``, only pixels redder and not
    brighter than the photo's skin count (:data:`LIPS_REDNESS`, :data:`LIPS_BRIGHTNESS`, against the
    skin's median): teeth are not lips, and a mesh without teeth that must match them pales its lips
    instead (a light line above the upper lip, measured on the astronaut). A grayscale photo has no
    redness, and its refit compares the skin only, as without this region.

    Args:
        model: the morphable model, with a "lips" vertex mask (without one the region is empty).
        result: the first fit (its rendering says where the lips are).
        photo: (B, H, W, 3) the photo the fit was compared with (None: no colour gate).
        skin: (B, H, W) where the photo shows skin (M_face inside the fitted skin region): its median
            redness and brightness are the reference.
        margin: pixels at 224 px by which the region grows.
    """
    if "lips" not in model.masks:
        return torch.zeros_like(result.rendering.mask)
    lips = rendered_vertex_mask(model.masks["lips"], result).clamp(0, 1)
    radius = round(margin * lips.shape[-1] / 224)
    if radius > 0:
        lips = torch.nn.functional.max_pool2d(lips[:, None], 2 * radius + 1, 1, radius)[:, 0]
    if photo is None or skin is None:
        return lips
    luma, _, chroma = ycbcr(photo.float()).unbind(-1)
    gate = torch.zeros_like(lips)
    low, high = LIPS_REDNESS
    for i in range(lips.shape[0]):
        where = skin[i] > 0.5
        if where.sum() >= 20:  # as skin_mask: fewer pixels make no reference
            redder = ((chroma[i] - chroma[i][where].median() - low) / (high - low)).clamp(0, 1)
            darker = ((luma[i][where].median() + LIPS_BRIGHTNESS - luma[i]) / LIPS_BRIGHTNESS).clamp(0, 1)
            gate[i] = redder * darker
    return lips * gate


PRIOR_AT_INIT_WEIGHT = 1e-4
"""The coefficient prior's weight (:attr:`FitConfig.coef_weight`) in :func:`fit_with_skin_mask`'s fits when the
prior is centred on a regressor's guess (``prior_at_init``), against 2e-3 when it is centred on the mean face.
The regressor's guess is already close, so the prior has less to hold back, and at 2e-3 it held the fit's
geometry back from what the photo shows: on 40 synthetic faces (seed 7, 224 px, `data/README.md`) the fitted
face's vertices landed 1.67 px from their true places in the image at 2e-3, 1.29 px at 5e-4 and 0.97 px at 1e-4
(with the fit on the level-0 mesh; on level 1, as since, 0.84 px at 1e-4)."""


def prior_centre(guess: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """What a coefficient prior centred on ``guess`` (e.g. a regressor's prediction) is centred on: its
    identity, expression and albedo coefficients (:func:`fit`'s ``prior_mean``), None when it has none of them."""
    return {k: guess[k] for k in ("id", "exp", "tex") if k in guess} or None


def prior_weight(centre: dict[str, torch.Tensor] | None) -> float:
    """:attr:`FitConfig.coef_weight` for a coefficient prior centred on ``centre`` (:func:`fit`'s ``prior_mean``):
    :data:`PRIOR_AT_INIT_WEIGHT` when it is centred on a guess, :class:`FitConfig`'s default at the mean face (None)."""
    return PRIOR_AT_INIT_WEIGHT if centre else FitConfig.coef_weight


def fit_with_skin_mask(model: MorphableModel, photo: torch.Tensor, points: torch.Tensor, renderer: FaceRenderer,
                       fit_steps: int, refit_steps: int, init: dict[str, torch.Tensor] | None = None,
                       prior_at_init: bool = False,
                       photometric: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = photometric_loss
                       ) -> tuple[FitResult, FitResult | None, torch.Tensor]:
    """Fits, computes M_face from the rendered skin, and refits with it (lesson 04's recipe).

    The first fit compares every covered pixel, hair and hat included; its skin region trains a
    per-photo skin colour model (:func:`~facelib.losses.skin_mask`), and the refit, started from the
    first fit with the photometric term on from its first step, compares the skin pixels and the
    lips (:func:`lips_region`: M_face alone leaves the lips out, and the refit then closes smiles;
    the teeth stay out, since the mesh has none).

    Args:
        model: the morphable model, on the mesh the albedo lives on (``reconstruct`` passes level 1): the
            coefficients do not depend on the level, but a coarser mesh shades more coarsely and the fitted
            geometry bends to make up for it (``data/README.md``).
        photo: (1, S, S, 3) the aligned crop. points: (1, 5, 2) its five landmarks or (1, 68, 2) its 68
            (:func:`facelib.nets.dlib_landmarks.fit_landmarks`).
        renderer: a renderer of ``model`` at S.
        fit_steps, refit_steps: steps of the two fits (refit_steps = 0 skips the refit).
        init: start values of the first fit (e.g. a regressor's prediction).
        prior_at_init: centre both fits' coefficient prior on ``init`` (see :func:`fit`'s ``prior_mean``; no effect without
            ``init``), with the looser weight :data:`PRIOR_AT_INIT_WEIGHT`.
        photometric: the photometric term of both fits (e.g. :func:`~facelib.losses.grayscale_photometric_loss`
            for a grayscale photo).

    Returns:
        (first fit, refit or None, M_face (B, S, S); the refit's mask is M_face with the lips region added).
    """
    if "skin" not in model.masks:
        raise ValueError("the model has no 'skin' vertex mask, which M_face needs; use the open face model or add one")
    centre = prior_centre(init) if prior_at_init and init is not None else None
    weight = prior_weight(centre)
    first = fit(model, photo, points, renderer, config=FitConfig(steps=fit_steps, frames=0, coef_weight=weight), init=init, prior_mean=centre,
                photometric=photometric)
    where_skin = skin_region(model, first)
    m_face = skin_mask(photo, where_skin)
    if refit_steps == 0:
        return first, None, m_face
    second = fit(model, photo, points, renderer, mask=torch.maximum(m_face, lips_region(model, first, photo, m_face * where_skin)),
                 init=first.params,
                 config=FitConfig(steps=refit_steps, landmark_steps=0, frames=0, coef_weight=weight), prior_mean=centre,
                 photometric=photometric)
    return first, second, m_face
