"""The identity loss: does the rendered face look like the same person to a face recogniser?"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from facelib.nets import IdentityEncoder


def identity_loss(embedding_a: torch.Tensor, embedding_b: torch.Tensor) -> torch.Tensor:
    """L_id = 1 - cos(f(I), f(R')), averaged over the batch (Lin et al., eq. 3; Deng et al.'s perceptual loss).

    The embeddings f come from a face recognition network (:class:`facelib.nets.IdentityEncoder`:
    FaceNet, the paper's, or dlib's ResNet); the loss is 0 for the same direction and 2 for opposite ones.

    Args:
        embedding_a, embedding_b: (B, E) embeddings (need not be normalised).

    Returns:
        () the batch mean.
    """
    if embedding_a.shape != embedding_b.shape or embedding_a.ndim != 2:
        raise ValueError(f"embeddings must both be (B, E), got {tuple(embedding_a.shape)} and {tuple(embedding_b.shape)}")
    return (1.0 - F.cosine_similarity(embedding_a, embedding_b, dim=-1)).mean()


class IdentityDistance(NamedTuple):
    """How far apart two faces are for a face recogniser (see :func:`identity_distance`).

    Attributes:
        distance: (B,) Euclidean distance of the network's own descriptors (dlib's network: raw
            128-D descriptors, the same person below 0.6; FaceNet: unit-length 512-D embeddings).
        cosine: (B,) cosine similarity of the same descriptors (1 - cosine is the identity loss).
        same_person: (B,) bool, distance below the network's threshold, or None when the network
            has no such rule (FaceNet, the untrained network).
    """

    distance: torch.Tensor
    cosine: torch.Tensor
    same_person: torch.Tensor | None


def identity_distance(encoder: "IdentityEncoder", photo: torch.Tensor, render: torch.Tensor) -> IdentityDistance:
    """The identity distance between photos and renderings of them, for metrics.

    Args:
        encoder: a :class:`facelib.nets.IdentityEncoder` (its ``name`` says which network measured).
        photo: (B, S, S, 3) aligned face crops in [0, 1] (:func:`facelib.data.align_face`), or (S, S, 3).
        render: the same shape: the re-rendered faces, composited over the photo, in the crop's frame.

    Returns:
        :class:`IdentityDistance` of (B,) tensors ((), for unbatched input). Differentiable; wrap the
        call in ``torch.no_grad()`` when it is only a score.

    Raises:
        ValueError: the two shapes differ, or the crops are not (B, S, S, 3) in [0, 1].
    """
    if photo.shape != render.shape:
        raise ValueError(f"photo and render must have the same shape, got {tuple(photo.shape)} and {tuple(render.shape)}")
    single = photo.ndim == 3
    if single:
        photo, render = photo[None], render[None]
    both = encoder.descriptors(torch.cat([photo, render.to(photo)], 0))
    a, b = both.chunk(2)
    distance = (a - b).norm(dim=1)
    cosine = F.cosine_similarity(a, b, dim=1)
    threshold = getattr(encoder, "same_person_threshold", None)
    same = distance < threshold if threshold is not None else None
    if single:
        distance, cosine, same = distance[0], cosine[0], None if same is None else same[0]
    return IdentityDistance(distance, cosine, same)
