"""Where the photometric loss may compare: M_proj (the rendered face) x M_face (skin in the photo).

Lin et al. used a face-parsing network that was never released to keep hair, glasses, hands and
background out of the pixel loss. facelib fits a **skin colour model per image** instead:

1. Take the pixels where the model's skin renders (the projection of the fitted face, eroded a
   little so that silhouette pixels, which often show background, do not count).
2. Describe their colour in YCbCr with a Gaussian (mean and 3 x 3 covariance). The fitted
   covariance is long along the luma axis Y (shading makes skin brighter and darker) and narrow in
   the chroma Cb, Cr; luma still matters, because dark brown hair has nearly the chroma of skin and
   differs mainly in brightness.
3. Fit it robustly: start from the median and the median absolute deviation, then a few rounds
   of re-estimation from the pixels within 2.5 standard deviations, so that the occluders inside the region (a fringe, a glasses frame, a microphone) do not drag
   the model towards their colour. This works because skin is the majority of that region in any
   photo the reconstruction can handle at all.
4. M_face from the Mahalanobis distance d of each pixel to the model: 1 up to d = 2.5 (as the
   inliers of the fit), falling linearly to 0 at d = 4: skin in light and shadow counts fully,
   colours the face does not have count not at all, and the few in between count partly.

Why this is sound: the occluders that matter for faces (hair, glasses frames and lenses, hats,
background, clothes) differ from skin in chromaticity far more than skin differs from itself under
the lighting of one photo. What it cannot do: exclude occluders of the same colour as the skin (a
hand over the face), and it drops parts of the face whose colour is not skin (the lips partly,
the eyes): add the rendered lips and eyes back to the mask where you want them compared. A learned
face parser would do better on both; this needs no network and no download.
"""

from __future__ import annotations

import torch

from facelib.render.composite import erode


def ycbcr(images: torch.Tensor) -> torch.Tensor:
    """(..., 3) RGB in [0, 1] -> (..., 3) ITU-R BT.601 Y, Cb, Cr (chroma centred on 0)."""
    r, g, b = images.unbind(-1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], -1)


@torch.no_grad()
def skin_mask(images: torch.Tensor, region: torch.Tensor, erosion: int = 2, rounds: int = 3, inlier: float = 2.5,
              outlier: float = 4.0) -> torch.Tensor:
    """A per-image skin colour model, fitted inside ``region``, evaluated everywhere (M_face).

    Args:
        images: (B, H, W, 3) photos in [0, 1].
        region: (B, H, W) where skin is expected (e.g. the rendered coverage of the model's skin
            vertices).
        erosion: pixels taken off the region's border before fitting.
        rounds: robust re-estimation rounds.
        inlier: pixels within this many standard deviations take part in the next round, and get
            mask 1.
        outlier: from this many standard deviations on, the mask is 0 (linear in between).

    Returns:
        (B, H, W) soft mask in [0, 1]. Images whose region is (almost) empty get an all-ones mask
        (nothing to learn from, so nothing is excluded).
    """
    if not 0 < inlier < outlier:
        raise ValueError(f"need 0 < inlier < outlier, got {inlier} and {outlier}")
    if images.ndim != 4 or images.shape[-1] != 3 or region.shape != images.shape[:3]:
        raise ValueError(f"images must be (B, H, W, 3) and region (B, H, W), got {tuple(images.shape)} and {tuple(region.shape)}")
    chroma = ycbcr(images.float())  # (B, H, W, 3)
    fit_region = erode(region.float(), erosion)
    out = torch.ones(images.shape[:3], dtype=images.dtype, device=images.device)
    eye = torch.eye(3, device=images.device) * 1e-5
    for i in range(images.shape[0]):
        pixels = chroma[i][fit_region[i] > 0.5]  # (N, 3)
        if pixels.shape[0] < 20:
            continue
        # Start from the median and the median absolute deviation, which ignore up to half of the
        # pixels being something else; then refine mean and covariance on the inliers.
        median = pixels.median(0).values
        spread = 1.4826 * (pixels - median).abs().median(0).values + 1e-3
        weights = (((pixels - median) / spread).pow(2).sum(-1) < inlier**2).float()
        if weights.sum() < 10:
            weights = torch.ones(pixels.shape[0], device=images.device)
        for _ in range(max(rounds, 1)):
            w = weights / weights.sum()
            mean = (w[:, None] * pixels).sum(0)
            centred = pixels - mean
            cov = (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0) + eye
            d2 = (centred @ torch.linalg.inv(cov) * centred).sum(-1)
            weights = (d2 < inlier**2).float()
            if weights.sum() < 10:
                break
        centred_all = chroma[i] - mean
        d2_all = (centred_all @ torch.linalg.inv(cov) * centred_all).sum(-1)
        out[i] = ((outlier - d2_all.sqrt()) / (outlier - inlier)).clamp(0, 1).to(images.dtype)
    return out
