"""The photometric loss: how far the rendered face is from the photo, where the face is."""

from __future__ import annotations

import torch


def photometric_loss(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Masked per-pixel colour distance, as in Deng et al. (2019) and Lin et al. (2020):

        L_pix = sum_p M_p ||I_p - R_p||_2 / sum_p M_p,

    the Euclidean (not squared) RGB distance, which is robust to pixels the model cannot explain
    (hair strands, glasses, shadows): their pull grows linearly, not quadratically.

    Args:
        rendered: (B, H, W, 3) the rendering R.
        target: (B, H, W, 3) the photo I.
        mask: (B, H, W) weights M (e.g. the coverage mask times a skin mask).
        eps: keeps the square root differentiable where R = I.

    Returns:
        () the mean over the batch of each image's loss.
    """
    if rendered.shape != target.shape or rendered.shape[:3] != mask.shape:
        raise ValueError(f"rendered {tuple(rendered.shape)}, target {tuple(target.shape)} and mask {tuple(mask.shape)} "
                         "must share (B, H, W)")
    distance = ((rendered - target).pow(2).sum(-1) + eps).sqrt()
    per_image = (distance * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1.0)
    return per_image.mean()


LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights: how a grayscale photo was made from colour (PIL's "L" mode, most cameras)."""


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """The luma Y = 0.299 R + 0.587 G + 0.114 B of colours, repeated in three channels.  (..., 3) -> (..., 3)."""
    if image.shape[-1] != 3:
        raise ValueError(f"colours must be (..., 3), got {tuple(image.shape)}")
    luma = image @ torch.tensor(LUMA, dtype=image.dtype, device=image.device)
    return luma.unsqueeze(-1).expand(image.shape)


def grayscale_photometric_loss(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`photometric_loss` on the luma of both images: the term for a grayscale photo.

    A grayscale photo says nothing about hue, so a colour comparison pulls the rendering towards
    grey and the fit pays for it with grey skin, reddened lips and tinted brows (the colour model
    bends to match). Comparing luma only leaves the hue to the prior: the model's own skin colours.
    """
    return photometric_loss(grayscale(rendered), grayscale(target), mask)
