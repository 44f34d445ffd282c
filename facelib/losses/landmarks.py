"""The landmark loss: projected model landmarks against detected ones."""

from __future__ import annotations

import torch


def landmark_loss(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                  image_size: float = 224.0) -> torch.Tensor:
    """Weighted mean squared distance between 2D landmarks, in units of the image size:

        L_lm = (1 / K) sum_k w_k ||q_k - q'_k||^2 / S^2,

    with S the image side, so the same weight works at any resolution. Deng et al. weight the
    68-point loss 20 on the nose (28-30) and the inner mouth (60-67)
    (:data:`facelib.morphable.landmarks.LANDMARK_WEIGHTS_68`).

    Args:
        predicted: (B, K, 2) projected model landmarks in pixels.
        target: (B, K, 2) detected landmarks in pixels.
        weights: (K,) per-landmark weights (default 1).
        image_size: S in pixels.

    Returns:
        () the batch mean.
    """
    if predicted.shape != target.shape or predicted.shape[-1] != 2:
        raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} must both be (B, K, 2)")
    squared = (predicted - target).pow(2).sum(-1) / image_size**2
    if weights is not None:
        squared = squared * weights.to(squared)
    return squared.mean()
