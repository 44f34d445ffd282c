"""The identity loss: does the rendered face look like the same person to a face recogniser?"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_loss(embedding_a: torch.Tensor, embedding_b: torch.Tensor) -> torch.Tensor:
    """L_id = 1 - cos(f(I), f(R')), averaged over the batch (Lin et al., eq. 3; Deng et al.'s perceptual loss).

    The embeddings f come from a face recognition network (FaceNet here,
    :class:`facelib.nets.IdentityEncoder`); the loss is 0 for the same direction and 2 for opposite ones.

    Args:
        embedding_a, embedding_b: (B, E) embeddings (need not be normalised).

    Returns:
        () the batch mean.
    """
    if embedding_a.shape != embedding_b.shape or embedding_a.ndim != 2:
        raise ValueError(f"embeddings must both be (B, E), got {tuple(embedding_a.shape)} and {tuple(embedding_b.shape)}")
    return (1.0 - F.cosine_similarity(embedding_a, embedding_b, dim=-1)).mean()
