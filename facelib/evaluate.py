"""Metrics and the ground-truth benchmark: how close is a reconstructed albedo to the true one?

Real photos have no ground-truth albedo, so the course measures texture quality on the synthetic
benchmark (:func:`facelib.data.benchmark`, seed 2020): faces of the open model whose true albedo,
with its added detail (freckles, moles, stubble, make-up, wrinkles), is known per vertex. A method
is anything that maps a benchmark batch to a per-vertex albedo on the benchmark's mesh, together with
the shape, pose and lighting it believes in (:class:`Prediction`), for example "the regressor's 3DMM
albedo" or "the regressor's albedo refined by a trained TextureGCN".

Metrics, per face, then averaged over the benchmark:

* **albedo error**: the mean per-vertex L1 distance, averaged over RGB,

      e = sum_v w_v |T'_v - T*_v|_1 / (3 sum_v w_v),

  over three vertex sets ``w``: ``face`` (the model's skin region), ``visible`` (skin vertices the
  camera sees in the input image: the only ones whose colour the photo shows) and ``detail`` (skin
  vertices where the detail layer moved the true colour by more than ``detail_threshold``, the
  high-frequency band a 3DMM cannot hold). Lower is better; 0 is perfect. Each is also reported
  **scale-invariant** ("face SI", "detail SI"): after the per-face, per-channel gain that best
  matches the truth over the face. From one photo, albedo and light are determined only up to
  such a gain, and a fit's guess of it (steered by its lighting prior) often dominates the plain
  error; the scale-invariant error scores the pattern of the albedo, which is what texture
  refinement can change.
* **PSNR** and **SSIM** of the method's rendering against the input image, inside the face mask
  (the true face pixels that the method's rendering also covers). Higher is better. These score
  the whole reconstruction as the photometric loss sees it, so a method can win here by baking
  light into the albedo; the albedo error is the one that cannot be gamed that way.
* **identity distance** (with an ``encoder``): the distance between the identity network's
  descriptors of the input image and of the method's rendering pasted over it
  (:func:`~facelib.losses.identity.identity_distance`; dlib's network calls two faces the same
  person below 0.6). Lower is better: the reconstruction still looks like the person.

:func:`rerender_scores` gives the last three for a real photo, which has no true albedo.

SSIM follows Wang et al. (2004) with an 11 x 11 Gaussian window (sigma 1.5), C1 = (0.01)^2,
C2 = (0.03)^2, computed per channel on the full images and averaged over the mask.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, TypeVar

import torch
import torch.nn.functional as F

from facelib.render.sample import vertex_visibility

VERTEX_SETS = ("face", "visible", "detail")
"""The vertex sets the albedo error is reported over (see the module docstring)."""

ALBEDO_ERRORS = ("face", "visible", "detail", "face_si", "detail_si")
"""The albedo errors :func:`evaluate` reports: per vertex set, and scale-invariant ("_si", see :func:`albedo_error`)."""

DETAIL_THRESHOLD = 0.03
"""A vertex is in the detail band when the detail layer moved its true colour by more than this (L1 mean over RGB)."""


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
def albedo_error(albedo: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor, scale_invariant: bool = False) -> torch.Tensor:
    """Weighted mean per-vertex L1 distance between two albedos.

    Args:
        albedo: (B, V, 3) predicted albedo.
        truth: (B, V, 3) true albedo.
        weights: (B, V) or (V,) vertex weights (0/1 masks are typical).
        scale_invariant: first scale each face's predicted albedo per channel by the gain that fits
            the truth best in least squares over the weighted vertices,
            g_c = sum_v w_v T'_vc T*_vc / sum_v w_v T'_vc^2. From one photo, albedo and light are only
            determined up to such a gain (a face twice as bright under half the light looks the
            same), so this error scores the pattern of the albedo, not the guess of its overall
            brightness and tint (the scale-invariant error of intrinsic-image benchmarks, Grosse
            et al. 2009).

    Returns:
        (B,) the error per face; NaN for a face whose weights are all zero (nothing to measure).
    """
    if albedo.shape != truth.shape or albedo.ndim != 3 or albedo.shape[-1] != 3:
        raise ValueError(f"albedo and truth must both be (B, V, 3), got {tuple(albedo.shape)} and {tuple(truth.shape)}")
    weights = weights.to(albedo.dtype).expand(albedo.shape[:2])
    total = weights.sum(1)
    if scale_invariant:
        return _scale_invariant_error(albedo, truth, weights, weights)
    err = ((albedo - truth).abs().mean(-1) * weights).sum(1) / total.clamp(min=1e-12)
    return torch.where(total > 0, err, torch.full_like(err, math.nan))


def _scale_invariant_error(albedo: torch.Tensor, truth: torch.Tensor, fit_on: torch.Tensor, read_on: torch.Tensor) -> torch.Tensor:
    w = fit_on.to(albedo.dtype).unsqueeze(-1)
    gain = (w * albedo * truth).sum(1, keepdim=True) / (w * albedo * albedo).sum(1, keepdim=True).clamp(min=1e-12)
    return albedo_error(albedo * gain, truth, read_on)


def psnr(image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio inside a mask, for images in [0, 1].

    PSNR = 10 log10(1 / MSE), with the MSE over the masked pixels and the three channels.

    Args:
        image, target: (B, H, W, 3) images in [0, 1].
        mask: (B, H, W) pixel weights.

    Returns:
        (B,) PSNR in dB (NaN for an empty mask).
    """
    _check_images(image, target, mask)
    m = mask.to(image.dtype)
    total = m.sum((1, 2))
    mse = (((image - target) ** 2).mean(-1) * m).sum((1, 2)) / total.clamp(min=1e-12)
    value = 10 * torch.log10(1.0 / mse.clamp(min=1e-10))
    return torch.where(total > 0, value, torch.full_like(value, math.nan))


def ssim(image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) averaged inside a mask, for images in [0, 1].

    Args:
        image, target: (B, H, W, 3) images in [0, 1].
        mask: (B, H, W) pixel weights; the SSIM map is averaged over them.
        window: side of the Gaussian window (odd).
        sigma: its standard deviation in pixels.

    Returns:
        (B,) SSIM in [-1, 1] (1: identical; NaN for an empty mask).
    """
    _check_images(image, target, mask)
    if window % 2 != 1:
        raise ValueError(f"window must be odd, got {window}")
    x, y = image.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    g = torch.exp(-((torch.arange(window, dtype=x.dtype, device=x.device) - window // 2) ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        # Reflect padding keeps the statistics of border pixels from mixing with a zero frame.
        return F.conv2d(F.pad(t, [window // 2] * 4, mode="reflect"), kernel, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    m = mask.to(x.dtype)
    total = m.sum((1, 2))
    value = (index.mean(1) * m).sum((1, 2)) / total.clamp(min=1e-12)
    return torch.where(total > 0, value, torch.full_like(value, math.nan))


def _check_images(image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
    if image.shape != target.shape or image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"image and target must both be (B, H, W, 3), got {tuple(image.shape)} and {tuple(target.shape)}")
    if mask.shape != image.shape[:3]:
        raise ValueError(f"mask must be (B, H, W) = {tuple(image.shape[:3])}, got {tuple(mask.shape)}")


# ---- the benchmark -------------------------------------------------------------------------------
@dataclass
class Scores:
    """Per-face metrics of one method on the benchmark.

    Attributes:
        method: its name.
        albedo: error name (:data:`ALBEDO_ERRORS`) -> (N,) albedo errors.
        psnr, ssim: (N,) rendering scores inside the face mask.
        identity: (N,) identity distance between the image and the rendering (NaN without an encoder).
        seconds: time spent in the method (not in the metrics).
    """

    method: str
    albedo: dict[str, torch.Tensor] = field(default_factory=dict)
    psnr: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    ssim: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    identity: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    seconds: float = 0.0

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
                    _scale_invariant_error(albedo, batch["albedo"], masks["face"], masks[key]))
            p = pred.params
            with torch.no_grad():
                shape = model.shape(p["id"], p["exp"])
                r = renderer.render(shape, albedo, p["angles"], p["translation"], p["gamma"])
            region = batch["skin"] * r.mask
            out.setdefault("psnr", []).append(psnr(r.image.clamp(0, 1), batch["image"], region))
            out.setdefault("ssim", []).append(ssim(r.image.clamp(0, 1), batch["image"], region))
            out.setdefault("identity", []).append(_identity(encoder, batch["image"], r.image, r.mask))
    return {name: Scores(name, {k: torch.cat(out[k]).cpu() for k in ALBEDO_ERRORS}, torch.cat(out["psnr"]).cpu(),
                         torch.cat(out["ssim"]).cpu(), torch.cat(out["identity"]).cpu(), seconds[name])
            for name, out in parts.items()}


@torch.no_grad()
def _identity(encoder: torch.nn.Module | None, image: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) identity distance between images and the renderings pasted over them (NaN without an encoder)."""
    if encoder is None:
        return torch.full(image.shape[:1], math.nan, device=image.device)
    return _pasted_identity(encoder, image, rendered, mask).distance


def _pasted_identity(encoder: torch.nn.Module, image: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor):
    """:func:`~facelib.losses.identity.identity_distance` between images and the renderings pasted over them
    where ``mask`` (B, H, W) covers: the identity network sees a whole face, as in L_id."""
    from facelib.losses.identity import identity_distance

    m = mask.unsqueeze(-1).to(image)
    return identity_distance(encoder.to(image.device), image, rendered.clamp(0, 1) * m + image * (1 - m))


@torch.no_grad()
def rerender_scores(photo: torch.Tensor, rendered: torch.Tensor, coverage: torch.Tensor, m_face: torch.Tensor,
                    encoder: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """How well a reconstruction re-renders a photo that has no ground truth.

    Args:
        photo: (B, S, S, 3) the aligned crops. rendered: (B, S, S, 3) the reconstruction rendered in them.
        coverage: (B, S, S) where the rendering covers. m_face: (B, S, S) M_face, the photo's skin.
        encoder: an identity network for the identity distance (None: left out).

    Returns:
        "psnr", "ssim": (B,) inside coverage x M_face; with an encoder also "identity" (B,), the
        descriptor distance between the photo and the rendering pasted over it, and
        "identity_cosine" (B,).
    """
    region = coverage * m_face
    scores = {"psnr": psnr(rendered.clamp(0, 1), photo, region), "ssim": ssim(rendered.clamp(0, 1), photo, region)}
    if encoder is not None:
        measured = _pasted_identity(encoder, photo, rendered, coverage)
        scores |= {"identity": measured.distance, "identity_cosine": measured.cosine}
    return scores


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


def paired_difference(baseline: torch.Tensor, method: torch.Tensor, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """The mean of method - baseline over the same items, with its paired-bootstrap percentile interval.

    Args:
        baseline, method: (N,) per-face scores (NaNs: the face is left out of both).

    Returns:
        (mean difference, low, high).

    Raises:
        ValueError: fewer than two faces have both scores.
    """
    if baseline.shape != method.shape or baseline.ndim != 1:
        raise ValueError(f"need two (N,) score vectors over the same faces, got {tuple(baseline.shape)} and {tuple(method.shape)}")
    keep = ~(baseline.isnan() | method.isnan())
    diff = (method[keep] - baseline[keep]).double()
    if diff.numel() < 2:
        raise ValueError("need at least two faces with both scores to compare")
    gen = torch.Generator().manual_seed(seed)
    draws = diff[torch.randint(0, diff.numel(), (resamples, diff.numel()), generator=gen)].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(draws, torch.tensor([tail, 1 - tail], dtype=draws.dtype)).tolist()
    return float(diff.mean()), low, high


def paired_improvement(baseline: torch.Tensor, method: torch.Tensor, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """How much lower a method's per-face errors are than a baseline's, with a bootstrap interval.

    The relative reduction is r = 1 - mean(method) / mean(baseline) over the same faces (paired).
    Its confidence interval comes from the paired bootstrap: draw the faces with replacement
    ``resamples`` times, recompute r on each draw, and take the central ``level`` share of the values
    (Efron and Tibshirani 1993, the percentile interval). An interval that excludes 0 says the
    improvement is not an accident of which faces the benchmark holds.

    Args:
        baseline, method: (N,) per-face errors on the same faces (NaNs: the face is left out of both).
        resamples: bootstrap draws.
        seed: the draws' seed.
        level: the interval's coverage.

    Returns:
        (r, low, high) as fractions (0.1 = 10 % lower error).
    """
    if baseline.shape != method.shape or baseline.ndim != 1:
        raise ValueError(f"need two (N,) error vectors over the same faces, got {tuple(baseline.shape)} and {tuple(method.shape)}")
    keep = ~(baseline.isnan() | method.isnan())
    base, new = baseline[keep].double(), method[keep].double()
    if base.numel() < 2:
        raise ValueError("need at least two faces with both errors to compare")
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, base.numel(), (resamples, base.numel()), generator=gen)
    ratios = 1 - new[draws].mean(1) / base[draws].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(ratios, torch.tensor([tail, 1 - tail], dtype=ratios.dtype)).tolist()
    return float(1 - new.mean() / base.mean()), low, high


def ground_truth(batch: dict[str, torch.Tensor], base: bool = False) -> Prediction:
    """The true albedo (``base``: without the detail layer) with the true geometry: a method for sanity checks.

    With ``base=True`` it is the best any 3DMM-only method can do: the exact coefficients, no detail.
    """
    keys = ("id", "exp", "angles", "translation", "gamma")
    return Prediction(batch["albedo_base" if base else "albedo"], {k: batch[k] for k in keys})
