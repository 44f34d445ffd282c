"""Per-face scores of a reconstruction: albedo error against the truth, PSNR and SSIM inside a mask,
and the identity distance of a rendering pasted over its image (see :mod:`facelib.evaluate`).

SSIM follows Wang et al. (2004) with an 11 x 11 Gaussian window (sigma 1.5), C1 = (0.01)^2,
C2 = (0.03)^2, computed per channel on the full images and averaged over the mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facelib.losses.identity import identity_distance


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
        return scale_invariant_error(albedo, truth, weights, weights)
    err = ((albedo - truth).abs().mean(-1) * weights).sum(1) / total.clamp(min=1e-12)
    return torch.where(total > 0, err, torch.full_like(err, math.nan))


def scale_invariant_error(albedo: torch.Tensor, truth: torch.Tensor, fit_on: torch.Tensor, read_on: torch.Tensor) -> torch.Tensor:
    w = fit_on.to(albedo.dtype).unsqueeze(-1)
    gain = (w * albedo * truth).sum(1, keepdim=True) / (w * albedo * albedo).sum(1, keepdim=True).clamp(min=1e-12)
    return albedo_error(albedo * gain, truth, read_on)


def aligned_vertex_error(shape: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean per-vertex distance between two surfaces after the best similarity alignment.

    The predicted shape is first moved onto the truth by the rotation R, scale s and translation t
    minimising sum_v w_v ||s R x_v + t - y_v||^2 (Umeyama 1991), as face-reconstruction benchmarks
    do (NoW, REALY): a shape is scored on its form, not on where the camera put it or how far away.

    Args:
        shape: (B, V, 3) predicted vertices. truth: (B, V, 3) true vertices (same topology).
        weights: (V,) or (B, V) vertex weights (the face's vertices, 0/1 typical).

    Returns:
        (B,) the weighted mean Euclidean distance after alignment, in the shapes' units.
    """
    if shape.shape != truth.shape or shape.ndim != 3 or shape.shape[-1] != 3:
        raise ValueError(f"shape and truth must both be (B, V, 3), got {tuple(shape.shape)} and {tuple(truth.shape)}")
    x, y = shape.to(torch.float64), truth.to(torch.float64)
    w = weights.to(torch.float64).expand(shape.shape[:2])
    w = (w / w.sum(1, keepdim=True).clamp(min=1e-12)).unsqueeze(-1)
    mx, my = (w * x).sum(1, keepdim=True), (w * y).sum(1, keepdim=True)
    xc, yc = x - mx, y - my
    covariance = (w * yc).transpose(1, 2) @ xc  # (B, 3, 3): sum_v w_v y_v x_v^T
    u, sigma, vt = torch.linalg.svd(covariance)
    flip = torch.ones_like(sigma)
    flip[:, -1] = torch.sign(torch.linalg.det(u @ vt))  # a rotation, never a reflection
    rotation = u @ torch.diag_embed(flip) @ vt
    scale = (sigma * flip).sum(1) / (w * xc.pow(2)).sum((1, 2)).clamp(min=1e-24)
    moved = scale[:, None, None] * xc @ rotation.transpose(1, 2) + my
    return ((moved - y).norm(dim=-1) * w[..., 0]).sum(1).to(shape.dtype)


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


@torch.no_grad()
def identity_or_nan(encoder: torch.nn.Module | None, image: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) identity distance between images and the renderings pasted over them (NaN without an encoder)."""
    if encoder is None:
        return torch.full(image.shape[:1], math.nan, device=image.device)
    return pasted_identity(encoder, image, rendered, mask).distance


def pasted_identity(encoder: torch.nn.Module, image: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor):
    """:func:`~facelib.losses.identity.identity_distance` between images and the renderings pasted over them
    where ``mask`` (B, H, W) covers: the identity network sees a whole face, as in L_id."""
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
        measured = pasted_identity(encoder, photo, rendered, coverage)
        scores |= {"identity": measured.distance, "identity_cosine": measured.cosine}
    return scores
