"""The coarse-stage regressor scored: against the mean face on the synthetic benchmark, and as the start
of a fit on the bundled photos (``python -m facelib eval-regressor``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from facelib.data import BENCHMARK_SEED, PHOTOS, align_face, benchmark
from facelib.fit import FitConfig, fit, initial_params, project_landmarks
from facelib.morphable import load_open_model
from facelib.morphable.landmarks import five_from_68
from facelib.nets.regressor import Regressor
from facelib.render import FaceRenderer


@torch.no_grad()
def evaluate_regressor(regressor: Regressor, n: int = 100, size: int = 224, seed: int | None = None,
                       device: str | torch.device | None = None, batch: int = 25, verbose: bool = True) -> dict[str, Any]:
    """The regressor against the mean-face start (zero head) on the synthetic benchmark.

    Faces of :func:`facelib.data.benchmark` (seed 2020 by default, level 0), rendered at ``size``
    and resized by the regressor. Landmark error: mean distance of the visible landmarks, in pixels
    of a 224-px image; angle error: mean absolute error over pitch, yaw and roll, in degrees (and of
    the yaw alone).

    Returns:
        {"n", "seed", "size", "regressor": {"landmark_px", "angle_deg", "yaw_deg"}, "mean_face": {...}}.
    """
    seed = BENCHMARK_SEED if seed is None else seed
    faces = benchmark(seed=seed, n=n, size=size, level=0, device=device or "cpu")
    model = faces.model
    regressor = regressor.to(faces.device).eval()
    camera = faces.renderer.camera
    sums = {name: {"landmark_px": 0.0, "angle_deg": 0.0, "yaw_deg": 0.0} for name in ("regressor", "mean_face")}
    visible_total = 0.0
    for items in faces.batches(batch):
        predicted = regressor(items["image"])
        zero = {k: torch.zeros_like(v) for k, v in predicted.items()}
        visible = items["landmarks_visible"]
        visible_total += float(visible.sum())
        for name, params in (("regressor", predicted), ("mean_face", zero)):
            q = project_landmarks(model, params, camera)
            distance = (q - items["landmarks"]).norm(dim=-1) * (224.0 / size)
            sums[name]["landmark_px"] += float((distance * visible).sum())
            error = (params["angles"] - items["angles"]).abs() * 180 / math.pi
            sums[name]["angle_deg"] += float(error.mean(1).sum())
            sums[name]["yaw_deg"] += float(error[:, 1].sum())
    out: dict[str, Any] = {"n": n, "seed": seed, "size": size}
    for name, s in sums.items():
        out[name] = {"landmark_px": round(s["landmark_px"] / visible_total, 3), "angle_deg": round(s["angle_deg"] / n, 3),
                     "yaw_deg": round(s["yaw_deg"] / n, 3)}
    if verbose:
        print(f"benchmark (seed {seed}, {n} faces at {size} px): landmark error {out['regressor']['landmark_px']:.2f} px "
              f"(mean face {out['mean_face']['landmark_px']:.2f}), angle error {out['regressor']['angle_deg']:.2f} deg "
              f"(mean face {out['mean_face']['angle_deg']:.2f}), yaw {out['regressor']['yaw_deg']:.2f} deg "
              f"(mean face {out['mean_face']['yaw_deg']:.2f})")
    return out


def evaluate_photos(regressor: Regressor, size: int = 128, steps: int = 100, verbose: bool = True) -> dict[str, Any]:
    """Fits the two bundled photos from the regressor's prediction and from the mean face.

    Each photo is aligned (:func:`facelib.data.align_face`, ``size`` px, as the reconstruct
    pipeline does in fast mode) and fitted with :func:`facelib.fit.fit` (``steps`` steps, five
    MTCNN landmarks, default :class:`~facelib.fit.FitConfig`). Reported per photo and start: the
    five-point error of the start and of the fit in pixels (at ``size``), and the fit's final
    landmark and photometric losses.

    Returns:
        {photo name: {"regressor": {...}, "mean_face": {...}}}.
    """
    model = load_open_model(level=0)
    renderer = FaceRenderer.for_model(model, size)
    regressor = regressor.cpu().eval()
    out: dict[str, Any] = {}
    for name, path in PHOTOS.items():
        aligned = align_face(path, size=size)
        crop, points = aligned.image[None], aligned.points[None]
        with torch.no_grad():
            starts = {"regressor": regressor(crop), "mean_face": initial_params(model, 1)}
        out[name] = {}
        for start_name, start in starts.items():
            with torch.no_grad():
                q0 = five_from_68(project_landmarks(model, start, renderer.camera))
            result = fit(model, crop, points, renderer, config=FitConfig(steps=steps, frames=0), init=start)
            q1 = five_from_68(result.rendering.landmarks)
            out[name][start_name] = {
                "start_5pt_px": round(float((q0 - points).norm(dim=-1).mean()), 3),
                "fit_5pt_px": round(float((q1 - points).norm(dim=-1).mean()), 3),
                "final_landmark_loss": round(result.history["landmarks"][-1], 7),
                "final_photometric": round(result.history["photometric"][-1], 5),
            }
        if verbose:
            r, m = out[name]["regressor"], out[name]["mean_face"]
            print(f"{name} ({size} px, {steps} fit steps): 5-point error at the start {r['start_5pt_px']:.2f} px from the regressor "
                  f"vs {m['start_5pt_px']:.2f} from the mean face; after the fit {r['fit_5pt_px']:.2f} vs {m['fit_5pt_px']:.2f} px, "
                  f"landmark loss {r['final_landmark_loss']:.2e} vs {m['final_landmark_loss']:.2e}, "
                  f"photometric {r['final_photometric']:.4f} vs {m['final_photometric']:.4f}")
    return out
