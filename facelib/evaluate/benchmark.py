"""The ground-truth benchmark loop: methods scored on synthetic faces whose albedo is known, and
the tables that compare them (see :mod:`facelib.evaluate` for the metrics).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, TypeVar

import torch

from facelib.evaluate.bootstrap import paired_difference, paired_improvement
from facelib.evaluate.metrics import albedo_error, identity_or_nan, psnr, scale_invariant_error, ssim
from facelib.render.sample import vertex_visibility

VERTEX_SETS = ("face", "visible", "detail")
"""The vertex sets the albedo error is reported over (see the module docstring)."""

ALBEDO_ERRORS = ("face", "visible", "detail", "face_si", "detail_si")
"""The albedo errors :func:`evaluate` reports: per vertex set, and scale-invariant ("_si", see :func:`albedo_error`)."""

DETAIL_THRESHOLD = 0.03
"""A vertex is in the detail band when the detail layer moved its true colour by more than this (L1 mean over RGB)."""

DETAIL_SHARE_SPLIT = 0.15
""":func:`detail_split` splits the faces here by the share of a face's skin vertices in the detail band.
A synthetic face is the model's albedo plus a detail layer of random strength; well below this share its
truth is almost a 3DMM albedo, which a fit recovers and to which the photo's reading mostly adds the
fit's small errors (``data/README.md``)."""


@dataclass
class Prediction:
    """What a method predicts for a benchmark batch.

    Attributes:
        albedo: (B, V, 3) per-vertex albedo in [0, 1] on the benchmark's mesh.
        params: the shape, pose and lighting it renders with: "id", "exp", "angles", "translation",
            "gamma" (the :func:`facelib.fit.initial_params` layout; "tex" is not used).
    """

    albedo: torch.Tensor
    params: dict[str, torch.Tensor]


Method = Callable[[dict[str, torch.Tensor]], Prediction]
"""A method maps a benchmark batch (:meth:`SyntheticFaces.batch`) to a :class:`Prediction`."""


T = TypeVar("T")


def once_per_batch(compute: Callable[[dict[str, torch.Tensor]], T]) -> Callable[[dict[str, torch.Tensor]], T]:
    """``compute`` run once per batch, for several methods that share its work.

    :func:`evaluate` calls each method on the same batch one after the other; methods built on one
    expensive run (a fit, the frozen networks) read it through this instead of repeating it. The
    memo holds the batch's image itself, so an identity test cannot mistake a later batch for it.
    """
    memo: dict[str, object] = {}

    def cached(batch: dict[str, torch.Tensor]) -> T:
        if memo.get("image") is not batch["image"]:
            memo.update(image=batch["image"], value=compute(batch))
        return memo["value"]  # type: ignore[return-value]

    return cached


# ---- metrics -------------------------------------------------------------------------------------


@dataclass
class Scores:
    """Per-face metrics of one method on the benchmark.

    Attributes:
        method: its name.
        albedo: error name (:data:`ALBEDO_ERRORS`) -> (N,) albedo errors.
        psnr, ssim: (N,) rendering scores inside the face mask.
        identity: (N,) identity distance between the image and the rendering (NaN without an encoder).
        seconds: time spent in the method (not in the metrics).
        detail_share: (N,) the share of each face's skin vertices in the detail band (from the truth, the
            same for every method; empty when not measured).
    """

    method: str
    albedo: dict[str, torch.Tensor] = field(default_factory=dict)
    psnr: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    ssim: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    identity: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    seconds: float = 0.0
    detail_share: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    def mean(self) -> dict[str, float]:
        """The benchmark means (faces with an empty vertex set are left out of that set's mean)."""
        row = {f"albedo_{k}": float(v[~v.isnan()].mean()) if (~v.isnan()).any() else math.nan for k, v in self.albedo.items()}
        identity = float(self.identity.nanmean()) if self.identity.numel() else math.nan
        return row | {"psnr": float(self.psnr.nanmean()), "ssim": float(self.ssim.nanmean()), "identity": identity}


def truth_masks(faces, batch: dict[str, torch.Tensor], detail_threshold: float = DETAIL_THRESHOLD) -> dict[str, torch.Tensor]:
    """The vertex sets of a benchmark batch, from its ground truth.

    Args:
        faces: the :class:`~facelib.data.SyntheticFaces` benchmark the batch came from.
        batch: the batch.
        detail_threshold: see :data:`DETAIL_THRESHOLD`.

    Returns:
        "face", "visible", "detail": (B, V) float 0/1 masks.
    """
    model, renderer = faces.model, faces.renderer
    b = batch["albedo"].shape[0]
    skin = model.masks.get("skin")
    face = (skin if skin is not None else torch.ones(model.num_vertices, dtype=torch.bool, device=batch["albedo"].device))
    face = face.to(batch["albedo"].dtype).expand(b, -1)
    with torch.no_grad():
        shape = model.shape(batch["id"], batch["exp"])
        r = renderer.render(shape, batch["albedo"], batch["angles"], batch["translation"], batch["gamma"])
        visible = vertex_visibility(r.screen, r.depth, r.normals, r.points, renderer.camera.distance)
    detail = ((batch["albedo"] - batch["albedo_base"]).abs().mean(-1) > detail_threshold).to(face.dtype)
    return {"face": face, "visible": face * visible, "detail": face * detail}


def evaluate(methods: dict[str, Method], faces, batch_size: int = 8, indices: Iterable[int] | None = None,
             detail_threshold: float = DETAIL_THRESHOLD, progress: bool = False, encoder: torch.nn.Module | None = None
             ) -> dict[str, Scores]:
    """Scores methods on a benchmark of synthetic faces with ground truth.

    Args:
        methods: name -> :data:`Method`.
        faces: the benchmark (:func:`facelib.data.benchmark`), or any :class:`~facelib.data.SyntheticFaces`.
        batch_size: faces per batch.
        indices: which faces (default: all).
        detail_threshold: see :data:`DETAIL_THRESHOLD`.
        progress: show a progress bar.
        encoder: an identity network (:class:`~facelib.nets.IdentityEncoder`) for the identity
            distance (None: not measured, NaN).

    Returns:
        name -> :class:`Scores` (per face, in the order of ``indices``).

    Raises:
        ValueError: a method's albedo has the wrong shape or is not finite.
    """
    if not methods:
        raise ValueError("evaluate needs at least one method")
    order = list(range(len(faces))) if indices is None else list(indices)
    model, renderer = faces.model, faces.renderer
    parts: dict[str, dict[str, list[torch.Tensor]]] = {name: {} for name in methods}
    seconds = dict.fromkeys(methods, 0.0)
    batches: Iterable = faces.batches(batch_size, order)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=math.ceil(len(order) / batch_size), desc="benchmark")
    for batch in batches:
        masks = truth_masks(faces, batch, detail_threshold)
        share = masks["detail"].sum(1) / masks["face"].sum(1).clamp(min=1)
        for name, method in methods.items():
            start = time.perf_counter()
            pred = method(batch)
            seconds[name] += time.perf_counter() - start
            albedo = pred.albedo.detach()
            if albedo.shape != batch["albedo"].shape:
                raise ValueError(f"method {name!r} returned an albedo of shape {tuple(albedo.shape)}; "
                                 f"the benchmark's mesh needs {tuple(batch['albedo'].shape)}")
            if not torch.isfinite(albedo).all():
                raise ValueError(f"method {name!r} returned non-finite albedo values")
            out = parts[name]
            for key, weights in masks.items():
                out.setdefault(key, []).append(albedo_error(albedo, batch["albedo"], weights))
            # The gain is fitted over the whole face, then the error read over each set.
            for key in ("face", "detail"):
                out.setdefault(f"{key}_si", []).append(
                    scale_invariant_error(albedo, batch["albedo"], masks["face"], masks[key]))
            p = pred.params
            with torch.no_grad():
                shape = model.shape(p["id"], p["exp"])
                r = renderer.render(shape, albedo, p["angles"], p["translation"], p["gamma"])
            region = batch["skin"] * r.mask
            out.setdefault("psnr", []).append(psnr(r.image.clamp(0, 1), batch["image"], region))
            out.setdefault("ssim", []).append(ssim(r.image.clamp(0, 1), batch["image"], region))
            out.setdefault("identity", []).append(identity_or_nan(encoder, batch["image"], r.image, r.mask))
            out.setdefault("detail_share", []).append(share)
    return {name: Scores(name, {k: torch.cat(out[k]).cpu() for k in ALBEDO_ERRORS}, torch.cat(out["psnr"]).cpu(),
                         torch.cat(out["ssim"]).cpu(), torch.cat(out["identity"]).cpu(), seconds[name],
                         torch.cat(out["detail_share"]).cpu())
            for name, out in parts.items()}


TABLE_LEGEND = ("Columns: mean per-vertex L1 error of the albedo against the truth over the face's skin vertices "
                "('face'), the ones the camera sees ('visible') and the ones the detail layer changed, which a 3DMM "
                "cannot hold ('detail'); 'SI': the same after each face's best per-channel gain (from one photo, albedo "
                "and light are known only up to one); PSNR and SSIM: the rendering against the input image inside the "
                "face; 'id dist': the identity network's descriptor distance between the image and the rendering pasted "
                "over it (dlib's network: the same person below 0.6). Lower errors and distances are better; the last "
                "column is the change of the face error.")
"""What :func:`table`'s columns mean, in words, for printing under it."""


def table(scores: dict[str, Scores], baseline: str | None = None) -> str:
    """A plain-text table of the benchmark means, with the change of the face error against ``baseline``.

    Columns: albedo error over the face, its visible part and its detail band; the same two
    scale-invariant ("SI"); PSNR and SSIM of the renderings inside the face mask.
    """
    header = (f"{'method':<26}{'face':>8}{'visible':>9}{'detail':>8}{'face SI':>9}{'detail SI':>10}"
              f"{'PSNR dB':>9}{'SSIM':>7}{'id dist':>8}")
    if baseline is not None:
        if baseline not in scores:
            raise ValueError(f"baseline {baseline!r} is not among the methods {sorted(scores)}")
        header += f"  face vs {baseline}"
    rows = [header, "-" * len(header)]
    base = scores[baseline].mean()["albedo_face"] if baseline is not None else None
    for name, s in scores.items():
        m = s.mean()
        row = (f"{name:<26}{m['albedo_face']:>8.4f}{m['albedo_visible']:>9.4f}{m['albedo_detail']:>8.4f}"
               f"{m['albedo_face_si']:>9.4f}{m['albedo_detail_si']:>10.4f}{m['psnr']:>9.2f}{m['ssim']:>7.3f}{m['identity']:>8.3f}")
        if base:
            row += f"  {100 * (m['albedo_face'] - base) / base:+.1f} %"
        rows.append(row)
    return "\n".join(rows)


def improvement_table(scores: dict[str, Scores], baseline: str,
                      errors: Iterable[str] = ("face", "visible", "detail", "face_si", "detail_si"), resamples: int = 2000) -> str:
    """Each method's change of error against ``baseline``, with its paired-bootstrap 95 % interval.

    The sign follows :func:`table`'s last column: negative is a lower (better) error.

    Args:
        scores: :func:`evaluate`'s result.
        baseline: the method compared against.
        errors: which albedo errors (:data:`ALBEDO_ERRORS`).
        resamples: bootstrap draws (:func:`paired_improvement`).

    Returns:
        A heading, then one line per method and error, e.g.
        ``GCN  face  -9.70 %  (95 % interval -16.70 to -1.10): lower``.
    """
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not among the methods {sorted(scores)}")
    lines = [f"change of the error against {baseline!r} (negative: lower, i.e. better), paired bootstrap over the faces:"]
    for name, s in scores.items():
        if name == baseline:
            continue
        for error in errors:
            try:
                r, lo, hi = paired_improvement(scores[baseline].albedo[error], s.albedo[error], resamples)
            except ValueError:  # fewer than two faces have this vertex set (a face without detail has none)
                lines.append(f"  {name:<26}{error:<9}   n/a (fewer than two faces have these vertices)")
                continue
            # paired_improvement gives the reduction r = 1 - method / baseline; the change is -r.
            verdict = "lower" if lo > 0 else "higher" if hi < 0 else "no clear change"
            lines.append(f"  {name:<26}{error:<9}{-100 * r:+7.2f} %  (95 % interval {-100 * hi:+.2f} to {-100 * lo:+.2f}): {verdict}")
    return "\n".join(lines)


def detail_split(scores: dict[str, Scores], baseline: str, error: str = "face_si", split: float = DETAIL_SHARE_SPLIT,
                 resamples: int = 2000) -> dict[str, dict[str, dict[str, float]]]:
    """Each method's change of one albedo error against ``baseline``, on the faces with much detail and with little.

    The faces are split by :attr:`Scores.detail_share` at ``split``; in each group, over the faces where
    both errors are defined, the change is -r, r = 1 - mean(method) / mean(baseline)
    (:func:`paired_improvement`): negative when the method's error is lower.

    Args:
        scores: :func:`evaluate`'s result (with its detail shares).
        baseline: the method compared against.
        error: which albedo error (:data:`ALBEDO_ERRORS`).
        split: the detail share that separates "detailed" faces (at least it) from "plain" ones.
        resamples: bootstrap draws.

    Returns:
        method -> {"detailed", "plain"} -> {"faces", "baseline", "method", "change", "low", "high"}: the number
        of faces compared, the two mean errors over them, the change and its 95 % interval as fractions
        (the means and the change NaN without faces, the change NaN with fewer than two).

    Raises:
        ValueError: an unknown baseline or error, or scores without their detail shares.
    """
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not among the methods {sorted(scores)}")
    if error not in scores[baseline].albedo:
        raise ValueError(f"error {error!r} is not among the scores' errors {sorted(scores[baseline].albedo)}")
    share = scores[baseline].detail_share
    if share.numel() != scores[baseline].albedo[error].numel():
        raise ValueError("these scores have no detail share per face (evaluate() records it)")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, s in scores.items():
        if name == baseline:
            continue
        out[name] = {}
        for group, in_group in (("detailed", share >= split), ("plain", share < split)):
            a, b = scores[baseline].albedo[error], s.albedo[error]
            keep = in_group & ~a.isnan() & ~b.isnan()  # a face without detail has no detail-band error
            a, b = a[keep], b[keep]
            row = {"faces": int(keep.sum()), "baseline": float(a.mean()) if len(a) else math.nan,
                   "method": float(b.mean()) if len(b) else math.nan}
            if len(a) >= 2:
                r, lo, hi = paired_improvement(a, b, resamples)
                row |= {"change": -r, "low": -hi, "high": -lo}
            else:
                row |= dict.fromkeys(("change", "low", "high"), math.nan)
            out[name][group] = row
    return out


def detail_split_table(groups: dict[str, dict[str, dict[str, float]]], baseline: str, error: str = "face_si",
                       split: float = DETAIL_SHARE_SPLIT) -> str:
    """:func:`detail_split`'s result as text (formatted, not computed again: the CLI also records it).

    Args:
        groups: what :func:`detail_split` returned.
        baseline, error, split: the arguments it was called with (for the heading).

    Returns:
        A heading, then one line per method and group, e.g. (made-up numbers)
        ``GCN  detailed (20 faces)  0.0500 -> 0.0450  -10.00 %  (95 % interval -14.00 to -6.00)``.
    """
    lines = [f"{error} against {baseline!r} on faces with much detail (at least {100 * split:.0f} % of the skin in the detail band: "
             f"'detailed') and with little ('plain'), paired bootstrap:"]
    for name, rows in groups.items():
        for group, r in rows.items():
            label = f"{group} ({r['faces']} faces)"
            head = f"  {name:<26}{label:<22}"
            if math.isnan(r["change"]):
                lines.append(f"{head}  n/a (fewer than two faces)")
            else:
                lines.append(f"{head}  {r['baseline']:.4f} -> {r['method']:.4f}  {100 * r['change']:+.2f} %  "
                             f"(95 % interval {100 * r['low']:+.2f} to {100 * r['high']:+.2f})")
    return "\n".join(lines)


def score_change_table(scores: dict[str, Scores], baseline: str, resamples: int = 2000) -> str:
    """Each method's change of PSNR, SSIM and identity distance against ``baseline``, with paired-bootstrap 95 % intervals.

    Returns:
        A heading, then one line per method and score, e.g.
        ``GCN  PSNR  +2.10 dB  (95 % interval +1.90 to +2.30): higher (better)``.
    """
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not among the methods {sorted(scores)}")
    lines = [f"change of the rendering scores against {baseline!r}, paired bootstrap over the faces:"]
    for name, s in scores.items():
        if name == baseline:
            continue
        for label, attr, unit, higher_better in (("PSNR", "psnr", " dB", True), ("SSIM", "ssim", "", True),
                                                 ("id dist", "identity", "", False)):
            base, new = getattr(scores[baseline], attr), getattr(s, attr)
            try:
                d, lo, hi = paired_difference(base, new, resamples)
            except ValueError:
                continue  # not measured (no identity network) or too few faces
            better = "better" if (lo > 0) == higher_better else "worse"
            verdict = f"higher ({better})" if lo > 0 else f"lower ({better})" if hi < 0 else "no clear change"
            lines.append(f"  {name:<26}{label:<9}{d:+8.3f}{unit}  (95 % interval {lo:+.3f} to {hi:+.3f}): {verdict}")
    return "\n".join(lines)


def ground_truth(batch: dict[str, torch.Tensor], base: bool = False) -> Prediction:
    """The true albedo (``base``: without the detail layer) with the true geometry: a method for sanity checks.

    With ``base=True`` it is the best any 3DMM-only method can do: the exact coefficients, no detail.
    """
    keys = ("id", "exp", "angles", "translation", "gamma")
    return Prediction(batch["albedo_base" if base else "albedo"], {k: batch[k] for k in keys})
