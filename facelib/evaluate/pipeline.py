"""``reconstruct``'s stages as methods of the ground-truth benchmark (``python -m facelib eval-reconstruct``).

On synthetic faces the true albedo is known, so the 3DMM albedo, the refined one and the yardstick
(the photo de-lit by the fitted light, :func:`~facelib.texture_inputs.delit_reference`) can be scored
against it by :func:`facelib.evaluate.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from facelib.evaluate.benchmark import Prediction, once_per_batch
from facelib.evaluate.photos import FIDELITY_START
from facelib.fit import fit_with_skin_mask
from facelib.gcn.weights import load_texture_gcn, texture_hierarchy
from facelib.morphable import load_open_model
from facelib.morphable.landmarks import five_from_68
from facelib.nets import IdentityEncoder
from facelib.reconstruct import ReconstructConfig
from facelib.refine import RefineResult, refine
from facelib.texture_inputs import delit_reference, fidelity_inputs, input_options

BENCHMARK_BASELINE = "3DMM only (regress + fit)"
"""The name of :func:`benchmark_methods`' 3DMM-only method in tables."""

DELIT_REFERENCE = "photo de-lit (reference)"
"""The name of :func:`delit_reference` in :func:`benchmark_methods`' tables."""


def benchmark_methods(faces, level: int, config: ReconstructConfig | None = None, regressor: torch.nn.Module | None = None,
                      encoder: torch.nn.Module | None = None, compare: dict[str, str | Path] | None = None,
                      true_landmarks: int = 5) -> dict[str, Callable]:
    """This pipeline as methods of :func:`facelib.evaluate.evaluate`: 3DMM only, refined, and a yardstick.

    Per benchmark batch, the stages of :func:`reconstruct` after detection: the regressor's guess,
    the fit with M_face on the benchmark's mesh (:func:`fit_with_skin_mask`; the faces' true landmarks
    stand in for the detected ones, because detection is not what is measured here), and the
    texture refinement on the benchmark's mesh. The methods share one run per batch and the same
    fitted geometry and light, so their difference is the refinement alone.

    Args:
        faces: the benchmark (:func:`facelib.data.benchmark`); its model and renderer are used.
        level: the subdivision level of the benchmark's mesh (the one it was made with).
        config: steps of the fits and the refinement (``size`` and ``level`` are the benchmark's, not
            these); ``gcn_weights`` scores dataset-trained weights instead of per-image optimisation.
        regressor: the stage-1 regressor (None: the fit starts from the mean face).
        encoder: the face embedder (default: :class:`~facelib.nets.IdentityEncoder` as
            :func:`reconstruct` makes it).
        compare: name -> other dataset-trained TextureGCN weights, each run on the same fits as a method of
            its own, with the same ``config.refine`` (so fine-tuned too when it fine-tunes), e.g. a new
            training run against the shipped weights: the fits cost the time, a forward pass does not.
        true_landmarks: 5, the fit matches the five of the faces' true 68 that MTCNN would find, or 68,
            all of them, as ``reconstruct`` fits dlib's 68 on a photo (perfectly detected, and the jaw
            points a turned face hides included, which no detector sees: dlib's detector itself cannot
            be measured on these faces, see :mod:`facelib.reconstruct`).

    Returns:
        {:data:`BENCHMARK_BASELINE`: 3DMM only, "GCN refined (per image)" or "GCN refined (trained)": T',
        :data:`DELIT_REFERENCE`: :func:`delit_reference`, the yardstick, :data:`FIDELITY_START`: the
        trained network's starting point, and each of ``compare``}.
    """
    if true_landmarks not in (5, 68):
        raise ValueError(f"true_landmarks={true_landmarks}: the fit matches 5 or 68 of the true landmarks")
    compare = dict(compare or {})
    config = config or ReconstructConfig()
    name = "GCN refined (trained)" if config.gcn_weights is not None else "GCN refined (per image)"
    clash = set(compare) & {BENCHMARK_BASELINE, name, DELIT_REFERENCE, FIDELITY_START}
    if clash:
        raise ValueError(f"compare names {sorted(clash)} are taken by the pipeline's own methods: name them otherwise")
    if encoder is None:
        encoder = IdentityEncoder(weights=config.facenet_weights, download=config.download_facenet, allow_untrained=True)
    base = load_open_model(level=0, verbose=False)
    hierarchy = texture_hierarchy(base, level)
    if hierarchy.num_vertices[0] != faces.model.num_vertices:
        raise ValueError(f"level {level} has {hierarchy.num_vertices[0]:,} vertices, the benchmark's mesh "
                         f"{faces.model.num_vertices:,}: pass the level the benchmark was made with")
    for weights in ([config.gcn_weights] if config.gcn_weights is not None else []) + list(compare.values()):
        load_texture_gcn(weights, hierarchy, config.refine.gcn)  # a bad file fails now, not after the fits
    keys = ("id", "exp", "angles", "translation", "gamma")

    @once_per_batch  # the three methods read the same batch: fit and refine it once
    def run(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], RefineResult, tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        photo = batch["image"]
        start = None
        if regressor is not None:
            with torch.no_grad():
                start = regressor.to(photo.device)(photo)
        points = batch["landmarks"] if true_landmarks == 68 else five_from_68(batch["landmarks"])
        # As in reconstruct: the fit runs on the mesh the albedo is refined on.
        first, second, m_face = fit_with_skin_mask(faces.model, photo, points, faces.renderer,
                                                   config.fit_steps, config.refit_steps, start,
                                                   prior_at_init=config.prior_at_regressor)
        params = (second or first).params
        result = refine(faces.model, photo, params, encoder.to(photo.device), faces.renderer, m_face, hierarchy,
                        config.refine, weights=config.gcn_weights)
        start_point = fidelity_inputs(faces.model, faces.renderer, photo, params, **input_options(result.network)).yardstick()
        others = {name: refine(faces.model, photo, params, encoder.to(photo.device), faces.renderer, m_face, hierarchy,
                               config.refine, weights=weights).albedo for name, weights in compare.items()}
        return params, result, (delit_reference(faces.model, faces.renderer, photo, params, m_face), start_point), others

    def coarse(batch: dict[str, torch.Tensor]) -> Prediction:
        params, result, _, _ = run(batch)
        return Prediction(result.coarse, {k: params[k] for k in keys})

    def refined(batch: dict[str, torch.Tensor]) -> Prediction:
        params, result, _, _ = run(batch)
        return Prediction(result.albedo, {k: params[k] for k in keys})

    def reference(batch: dict[str, torch.Tensor]) -> Prediction:
        params, _, (albedo, _), _ = run(batch)
        return Prediction(albedo, {k: params[k] for k in keys})

    def start_point(batch: dict[str, torch.Tensor]) -> Prediction:
        params, _, (_, albedo), _ = run(batch)
        return Prediction(albedo, {k: params[k] for k in keys})

    def other(name: str) -> Callable:
        def method(batch: dict[str, torch.Tensor]) -> Prediction:
            params, _, _, others = run(batch)
            return Prediction(others[name], {k: params[k] for k in keys})
        return method

    return {BENCHMARK_BASELINE: coarse, name: refined, DELIT_REFERENCE: reference, FIDELITY_START: start_point,
            **{n: other(n) for n in compare}}
