"""The coarse stage scored (``python -m facelib eval-regressor``): the mean face, the regressor, and the
fits from each, against the synthetic benchmark's truth (shape in millimetres, expression, 68
landmarks, pose, albedo, skin tone), and the fit of the bundled photos from either start.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from facelib.data import BENCHMARK_SEED, PHOTOS, SyntheticConfig, SyntheticFaces, align_face, benchmark
from facelib.evaluate.bootstrap import paired_improvement
from facelib.evaluate.colour import SKIN_TONE_BANDS, ciede2000, skin_tone_band, srgb_to_lab, typology_angle
from facelib.evaluate.metrics import aligned_vertex_error, scale_invariant_error
from facelib.fit import (FitConfig, bare_skin, fit, fit_with_skin_mask, initial_params, prior_centre, prior_weight,
                         project_landmarks, render_params)
from facelib.morphable import MorphableModel, load_open_model
from facelib.morphable.landmarks import five_from_68
from facelib.nets.dlib_landmarks import fit_landmarks
from facelib.nets.regressor import Regressor
from facelib.render import FaceRenderer


MEAN_FACE, REGRESSOR, FIT_FROM_MEAN, FIT_FROM_REGRESSOR = "mean face", "regressor", "fit from mean face", "fit from regressor"
"""The coarse-stage methods :func:`evaluate_regressor` scores (the fits as ``reconstruct`` runs them)."""

SCORES = ("shape_mm", "expression_mm", "mouth_mm", "landmark_px", "angle_deg", "yaw_deg", "albedo_si", "skin_de00")
"""Per-face scores, all errors (lower is better); see :func:`coarse_scores`."""

TURNED_DEG = 45.0
"""Faces turned at least this far (true yaw, degrees) make the "turned" subset."""

FAR_TURNED = SyntheticConfig(min_yaw=60.0, max_yaw=75.0)
"""The benchmark's faces stop at 60 degrees of yaw; ``turned`` > 0 adds this many faces turned
60-75 degrees (otherwise the benchmark's distribution), drawn in their own split, :data:`FAR_TURNED_SPLIT`."""

FAR_TURNED_SPLIT = "benchmark-turned"

EXPRESSIVE_MOUTH_MM = 2.5
"""Faces whose true expression moves the mouth region by more than this (mean, mm) make the
"expressive mouth" subset: the smiles, pouts and open mouths a neutral face gets wrong (on the benchmark,
the strongest 28 of 100)."""

MM_PER_UNIT = 100.0
"""The open model's units are decimetres."""


def mouth_region(model: MorphableModel, radius: float = 0.15) -> torch.Tensor:
    """(V,) bool: the skin vertices within ``radius`` (model units; 0.15 = 15 mm) of a mouth landmark (48-67) of the mean face."""
    mean = model.mean_shape.view(-1, 3)
    mouth = mean[model.landmarks[48:68]]
    near = torch.cdist(mean, mouth).min(1).values < radius
    return near & model.masks["skin"].bool()


def coarse_scores(model: MorphableModel, renderer: FaceRenderer, params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                  skin: torch.Tensor, mouth: torch.Tensor) -> dict[str, torch.Tensor]:
    """The errors of one coarse-stage result against a benchmark batch's truth, per face.

    Args:
        model: the benchmark's morphable model; renderer: its renderer.
        params: the unknowns (the layout of :func:`facelib.fit.initial_params`), (B, k) each.
        batch: the benchmark batch (its true coefficients, landmarks, albedo, image and skin pixels).
        skin, mouth: (V,) vertex masks: the face's skin and the mouth region (:func:`mouth_region`).

    Returns:
        :data:`SCORES` -> (B,): ``shape_mm`` the mean vertex distance over the skin after a similarity
        alignment (identity and expression together), in mm; ``expression_mm`` and ``mouth_mm`` the
        mean distance between the predicted and the true expression offsets E c_exp over the skin and
        the mouth region (no alignment: both are offsets from the same face); ``landmark_px`` the mean
        2D distance of the visible 68 landmarks in pixels of a 224-px image; ``angle_deg`` the mean
        absolute pose error over pitch, yaw and roll and ``yaw_deg`` the yaw's, in degrees;
        ``albedo_si`` the scale-invariant albedo error over the skin against the true albedo (detail
        included); ``skin_de00`` the CIEDE2000 difference between the mean colour of the re-rendered
        face and of the photo over the true skin pixels the rendering covers (NaN where it covers none).
    """
    b = params["id"].shape[0]
    w_skin, w_mouth = skin.to(batch["albedo"].dtype), mouth.to(batch["albedo"].dtype)
    shape, truth = model.shape(params["id"], params["exp"]), model.shape(batch["id"], batch["exp"])
    scores = {"shape_mm": aligned_vertex_error(shape, truth, w_skin) * MM_PER_UNIT}
    offsets = ((params["exp"] - batch["exp"]) @ model.exp_base.T).view(b, -1, 3).norm(dim=-1) * MM_PER_UNIT
    scores["expression_mm"] = (offsets * w_skin).sum(1) / w_skin.sum()
    scores["mouth_mm"] = (offsets * w_mouth).sum(1) / w_mouth.sum()
    size = renderer.camera.image_size[0]
    distance = (project_landmarks(model, params, renderer.camera) - batch["landmarks"]).norm(dim=-1) * (224.0 / size)
    visible = batch["landmarks_visible"]
    scores["landmark_px"] = (distance * visible).sum(1) / visible.sum(1).clamp(min=1)
    error = (params["angles"] - batch["angles"]).abs() * 180 / math.pi
    scores["angle_deg"], scores["yaw_deg"] = error.mean(1), error[:, 1]
    albedo = model.albedo(params["tex"]).clamp(0, 1)
    scores["albedo_si"] = scale_invariant_error(albedo, batch["albedo"], w_skin.expand(b, -1), w_skin.expand(b, -1))
    rendering = render_params(model, renderer, params)
    pixels = (batch["skin"] * rendering.mask)[..., None]
    count = pixels.sum((1, 2))
    photo = (batch["image"] * pixels).sum((1, 2)) / count.clamp(min=1)
    rendered = (rendering.image.clamp(0, 1) * pixels).sum((1, 2)) / count.clamp(min=1)
    de00 = ciede2000(srgb_to_lab(photo), srgb_to_lab(rendered)).to(photo.dtype)
    scores["skin_de00"] = torch.where(count[:, 0] > 0, de00, torch.full_like(de00, math.nan))
    return {k: v.detach() for k, v in scores.items()}


def evaluate_regressor(regressor: Regressor | None, n: int = 100, size: int = 224, seed: int | None = None,
                       device: str | torch.device | None = None, batch: int = 25, fit_steps: int = 0,
                       refit_steps: int = 0, prior_at_init: bool = True, fewer_steps: tuple[int, int] | None = None,
                       turned_faces: int = 0, verbose: bool = True) -> dict[str, Any]:
    """The coarse stage on the synthetic benchmark: the mean face, the regressor, and the fits from each.

    Faces of :func:`facelib.data.benchmark` (seed 2020 by default, level 0) at ``size``. With
    ``fit_steps`` > 0 each face is also fitted as ``reconstruct`` fits a photo, on the level-0 mesh the
    faces were rendered on (``reconstruct`` fits on its texture's mesh, level 1)
    (:func:`facelib.fit.fit_with_skin_mask`: ``fit_steps``, then ``refit_steps`` with M_face; the
    faces' true landmarks give the five points, since detection is not what is measured), once from
    the mean face and once from the regressor's guess. Every score of :data:`SCORES` is averaged per
    method, and three subsets are reported: faces turned at least :data:`TURNED_DEG` (yaw error),
    faces with an expressive mouth (:data:`EXPRESSIVE_MOUTH_MM`; mouth error, and its ratio to the
    neutral mean face's), and faces per skin-tone band of their true albedo
    (:data:`~facelib.evaluate.colour.SKIN_TONE_BANDS`; CIEDE2000 of the skin's mean colour).

    Args:
        regressor: the regressor (None: score the mean face and the fit from it only).
        n, size, seed: the benchmark. device: where to run. batch: faces per batch.
        fit_steps, refit_steps: the fits' steps (0: no fits).
        prior_at_init: the fit from the regressor centres its coefficient prior on the regressor's
            guess, at the looser weight :data:`facelib.fit.PRIOR_AT_INIT_WEIGHT`
            (:func:`facelib.fit.fit_with_skin_mask`), as ``reconstruct`` does by default.
        fewer_steps: (fit, refit) steps of one more fit from the regressor, to see whether its start
            reaches the mean face's result in fewer steps (None: not run).
        turned_faces: this many more faces turned 60-75 degrees (:data:`FAR_TURNED`), scored by every
            method for their yaw error: alone ("far_turned"'s "yaw_deg") and together with the
            benchmark's faces turned at least :data:`TURNED_DEG` ("yaw_deg_with_turned").
        verbose: print a table.

    Returns:
        {"n", "seed", "size", "fit_steps", "refit_steps", "methods": {method: {score: mean}},
        "seconds": {method: s}, "vs_mean_face": {score: [r, low, high]} (the regressor's relative
        improvement over the mean face, paired bootstrap), "fit_vs_fit": the same for the fit from the
        regressor over the fit from the mean face, "turned", "expressive_mouth", "skin_tone", and with
        ``turned_faces`` "far_turned"}.
    """
    seed = BENCHMARK_SEED if seed is None else seed
    faces = benchmark(seed=seed, n=n, size=size, level=0, device=device or "cpu")
    if regressor is not None:
        regressor = regressor.to(faces.device).eval()
    fits = fit_steps, refit_steps, prior_at_init, fewer_steps
    per_face, truth, seconds = _score_faces(faces, regressor, batch, *fits)
    yaw, ita = truth["yaw"], truth["ita"]
    neutral_mouth = per_face[MEAN_FACE]["mouth_mm"]  # the mean face's expression is zero: its error is the true expression
    out: dict[str, Any] = {"n": n, "seed": seed, "size": size, "fit_steps": fit_steps, "refit_steps": refit_steps,
                           "prior_at_init": prior_at_init,
                           "methods": {name: {k: _mean(v) for k, v in s.items()} for name, s in per_face.items()},
                           "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    for key, (base, new) in {"vs_mean_face": (MEAN_FACE, REGRESSOR), "fit_vs_fit": (FIT_FROM_MEAN, FIT_FROM_REGRESSOR)}.items():
        if base in per_face and new in per_face:
            out[key] = {k: [round(x, 4) for x in paired_improvement(per_face[base][k], per_face[new][k])] for k in SCORES}
    turned = yaw >= TURNED_DEG
    out["turned"] = {"min_yaw_deg": TURNED_DEG, "n": int(turned.sum()),
                     "yaw_deg": {name: _mean(s["yaw_deg"][turned]) for name, s in per_face.items()}}
    if turned_faces:
        far = SyntheticFaces(n=turned_faces, size=size, seed=seed, level=0, device=faces.device, config=FAR_TURNED,
                             split=FAR_TURNED_SPLIT)
        far_scores, _, _ = _score_faces(far, regressor, batch, *fits)
        out["far_turned"] = {"yaw_range_deg": [FAR_TURNED.min_yaw, FAR_TURNED.max_yaw], "n": turned_faces,
                             "yaw_deg": {name: _mean(s["yaw_deg"]) for name, s in far_scores.items()},
                             "yaw_deg_with_turned": {
                                 name: _mean(torch.cat([per_face[name]["yaw_deg"][turned], s["yaw_deg"]])) for name, s in far_scores.items()}}
    expressive = neutral_mouth > EXPRESSIVE_MOUTH_MM
    out["expressive_mouth"] = {
        "threshold_mm": EXPRESSIVE_MOUTH_MM, "n": int(expressive.sum()),
        "mouth_mm": {name: _mean(s["mouth_mm"][expressive]) for name, s in per_face.items()},
        "vs_neutral": {name: _mean(s["mouth_mm"][expressive]) / _mean(neutral_mouth[expressive]) if expressive.any() else math.nan
                       for name, s in per_face.items()}}
    bands = [skin_tone_band(float(a)) for a in ita]
    out["skin_tone"] = {}
    for band, _, _ in SKIN_TONE_BANDS:
        members = torch.tensor([b == band for b in bands])
        if members.any():
            out["skin_tone"][band] = {"n": int(members.sum()), "skin_de00": {name: _mean(s["skin_de00"][members]) for name, s in per_face.items()}}
    if verbose:
        print(coarse_table(out))
    return out


def _score_faces(faces: SyntheticFaces, regressor: Regressor | None, batch: int, fit_steps: int, refit_steps: int,
                 prior_at_init: bool, fewer_steps: tuple[int, int] | None
                 ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor], dict[str, float]]:
    """Every method of :func:`evaluate_regressor` on ``faces``: ({method: {score: (N,)}}, {"yaw", "ita": (N,)}, seconds)."""
    model, renderer = faces.model, faces.renderer
    skin = model.masks["skin"].bool()
    mouth = mouth_region(model)
    tone_skin = bare_skin(model)
    scores: dict[str, dict[str, list[torch.Tensor]]] = {}
    seconds: dict[str, float] = {}
    truth: dict[str, list[torch.Tensor]] = {"yaw": [], "ita": []}
    for items in faces.batches(batch):
        starts = {MEAN_FACE: initial_params(model, items["image"].shape[0])}
        if regressor is not None:
            with torch.no_grad():
                starts[REGRESSOR] = regressor(items["image"])
        methods = dict(starts)
        if fit_steps:
            points = five_from_68(items["landmarks"])
            fits = [(FIT_FROM_MEAN, None, fit_steps, refit_steps)]
            if regressor is not None:
                fits.append((FIT_FROM_REGRESSOR, starts[REGRESSOR], fit_steps, refit_steps))
                if fewer_steps is not None:
                    fits.append((f"{FIT_FROM_REGRESSOR}, {fewer_steps[0]} + {fewer_steps[1]} steps", starts[REGRESSOR], *fewer_steps))
            for name, start, steps, resteps in fits:
                began = time.perf_counter()
                first, second, _ = fit_with_skin_mask(model, items["image"], points, renderer, steps, resteps, start,
                                                      prior_at_init=prior_at_init)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began
                methods[name] = {k: v.detach() for k, v in (second or first).params.items()}
        with torch.no_grad():
            for name, params in methods.items():
                for key, value in coarse_scores(model, renderer, params, items, skin, mouth).items():
                    scores.setdefault(name, {}).setdefault(key, []).append(value.cpu())
            truth["yaw"].append(items["angles"][:, 1].abs().cpu() * 180 / math.pi)
            mean_albedo = (items["albedo"] * tone_skin[None, :, None]).sum(1) / tone_skin.sum()
            truth["ita"].append(typology_angle(srgb_to_lab(mean_albedo)).cpu())
    per_face = {name: {k: torch.cat(v) for k, v in s.items()} for name, s in scores.items()}
    return per_face, {k: torch.cat(v) for k, v in truth.items()}, seconds


def _mean(values: torch.Tensor) -> float:
    values = values[~values.isnan()]
    return round(float(values.mean()), 4) if values.numel() else math.nan


def coarse_table(result: dict[str, Any]) -> str:
    """:func:`evaluate_regressor`'s result as a text table: one row per method, then the subsets."""
    names = {"shape_mm": "shape mm", "expression_mm": "expr mm", "mouth_mm": "mouth mm", "landmark_px": "68-lm px",
             "angle_deg": "pose deg", "yaw_deg": "yaw deg", "albedo_si": "albedo SI", "skin_de00": "skin dE00"}
    lines = [f"coarse stage on the benchmark (seed {result['seed']}, {result['n']} faces at {result['size']} px"
             + (f", fits of {result['fit_steps']} + {result['refit_steps']} steps)" if result["fit_steps"] else ")")]
    width = max(len(m) for m in result["methods"]) + 2
    lines.append(f"{'method':<{width}}" + "".join(f"{names[k]:>11}" for k in SCORES))
    for method, m in result["methods"].items():
        lines.append(f"{method:<{width}}" + "".join(f"{m[k]:>11.3f}" for k in SCORES))
    turned, mouth = result["turned"], result["expressive_mouth"]
    lines.append(f"turned >= {turned['min_yaw_deg']:.0f} deg ({turned['n']} faces), yaw error: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in turned["yaw_deg"].items()))
    if "far_turned" in result:
        far = result["far_turned"]
        low, high = far["yaw_range_deg"]
        lines.append(f"turned {low:.0f}-{high:.0f} deg ({far['n']} more faces), yaw error: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in far["yaw_deg"].items()))
    lines.append(f"expressive mouth (> {mouth['threshold_mm']} mm, {mouth['n']} faces), mouth error vs the neutral face's: "
                 + ", ".join(f"{k} {v:.2f}x" for k, v in mouth["vs_neutral"].items()))
    for band, row in result["skin_tone"].items():
        lines.append(f"skin tone {band} ({row['n']} faces), CIEDE2000 of the skin's mean colour: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in row["skin_de00"].items()))
    return "\n".join(lines)


def evaluate_photos(regressor: Regressor, size: int = 128, steps: int = 100, verbose: bool = True) -> dict[str, Any]:
    """Fits the two bundled photos from the regressor's prediction and from the mean face.

    Each photo is aligned (:func:`facelib.data.align_face`, ``size`` px, as the reconstruct
    pipeline does in fast mode) and fitted with :func:`facelib.fit.fit` (``steps`` steps, default
    :class:`~facelib.fit.FitConfig`, the prior weighed as ``reconstruct`` weighs it,
    :func:`~facelib.fit.prior_weight`) to the landmarks ``reconstruct`` fits
    (:func:`~facelib.nets.dlib_landmarks.fit_landmarks`: dlib's 68, or MTCNN's five without them).
    Reported per photo and start, in pixels at ``size``: the five-point error (against MTCNN's) and,
    with dlib's landmarks, the 68-point error (against dlib's) of the start and of the fit; and the
    fit's final landmark and photometric losses. The start's 68-point error is the regressor's
    landmark error on a real photo, measured by a detector it never saw.

    Returns:
        {photo name: {"landmarks": 68 or 5, "regressor": {...}, "mean_face": {...}}}.
    """
    model = load_open_model(level=0)
    renderer = FaceRenderer.for_model(model, size)
    regressor = regressor.cpu().eval()
    out: dict[str, Any] = {}
    for name, path in PHOTOS.items():
        aligned = align_face(path, size=size)
        crop, points = aligned.image[None], aligned.points[None]
        targets, _, note = fit_landmarks(crop, points)
        if note and verbose:
            print(f"{name}: {note}")
        with torch.no_grad():
            starts = {"regressor": regressor(crop), "mean_face": initial_params(model, 1)}
        out[name] = {"landmarks": targets.shape[1]}
        for start_name, start in starts.items():
            with torch.no_grad():
                q0 = project_landmarks(model, start, renderer.camera)
            centre = prior_centre(start) if start_name == "regressor" else None  # as reconstruct fits
            result = fit(model, crop, targets, renderer, config=FitConfig(steps=steps, frames=0, coef_weight=prior_weight(centre)), init=start,
                         prior_mean=centre)
            q1 = result.rendering.landmarks
            row = {"start_5pt_px": round(float((five_from_68(q0) - points).norm(dim=-1).mean()), 3),
                   "fit_5pt_px": round(float((five_from_68(q1) - points).norm(dim=-1).mean()), 3)}
            if targets.shape[1] == 68:
                row |= {"start_68pt_px": round(float((q0 - targets).norm(dim=-1).mean()), 3),
                        "fit_68pt_px": round(float((q1 - targets).norm(dim=-1).mean()), 3)}
            out[name][start_name] = row | {"final_landmark_loss": round(result.history["landmarks"][-1], 7),
                                           "final_photometric": round(result.history["photometric"][-1], 5)}
        if verbose:
            r, m = out[name]["regressor"], out[name]["mean_face"]
            print(f"{name} ({size} px, {steps} fit steps): 5-point error at the start {r['start_5pt_px']:.2f} px from the regressor "
                  f"vs {m['start_5pt_px']:.2f} from the mean face; after the fit {r['fit_5pt_px']:.2f} vs {m['fit_5pt_px']:.2f} px, "
                  f"landmark loss {r['final_landmark_loss']:.2e} vs {m['final_landmark_loss']:.2e}, "
                  f"photometric {r['final_photometric']:.4f} vs {m['final_photometric']:.4f}")
            if "start_68pt_px" in r:
                print(f"{name}: dlib's 68 landmarks at the start {r['start_68pt_px']:.2f} px from the regressor vs "
                      f"{m['start_68pt_px']:.2f} from the mean face; after the fit {r['fit_68pt_px']:.2f} vs {m['fit_68pt_px']:.2f} px")
    return out
