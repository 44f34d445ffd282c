"""The two vertex losses of Lin et al.: keep the refined albedo near the 3DMM's, and near the photo.

Early in training the GCNs know nothing; these per-vertex terms (weighted by s4, which ramps from
1 to 0) give them something to hold on to before the rendering losses take over:

    L_vert(T, T')      = mean_i ||T_i - T'_i||_1             the refined albedo T' stays near the 3DMM albedo T;
    L_vert(T_p, T~')   = sum_i v_i ||T_p,i - T~'_i||_1 / sum_i v_i
                                                              T' under the estimated lighting (T~') matches
                                                              the photo's colours T_p at the visible vertices.

The norms are L1 per channel, averaged, as in the official code (``absolute_difference``). The
official code also pulls the hidden vertices' shaded colour towards the shaded 3DMM colour with
weight 0.3; :func:`projected_color_loss` offers that as ``hidden_weight``.
"""

from __future__ import annotations

import torch


def _check(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{what}: both must be (B, V, 3), got {tuple(a.shape)} and {tuple(b.shape)}")


def vertex_loss(albedo: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """L_vert(T, T') = mean over vertices and channels of |T - T'|.

    Args:
        albedo: (B, V, 3) the 3DMM albedo T.
        refined: (B, V, 3) the refined albedo T'.
    """
    _check(albedo, refined, "vertex_loss")
    return (albedo - refined).abs().mean()


def projected_color_loss(image_colors: torch.Tensor, shaded: torch.Tensor, visibility: torch.Tensor,
                         shaded_3dmm: torch.Tensor | None = None, hidden_weight: float = 0.0) -> torch.Tensor:
    """L_vert(T_p, T~'): the shaded refined albedo against the photo at the visible vertices.

        L = sum_i v_i |T_p,i - T~'_i|_1 / (3 sum_i v_i)  [+ w_h sum_i (1 - v_i) |T~_3DMM,i - T~'_i|_1 / (3 sum_i (1 - v_i))]

    Args:
        image_colors: (B, V, 3) T_p, the photo's colours at the projected vertices.
        shaded: (B, V, 3) T~', the refined albedo under the estimated lighting.
        visibility: (B, V) or (B, V, 1) 0/1 visibility of each vertex.
        shaded_3dmm: (B, V, 3) the 3DMM albedo under the same lighting (for the hidden term).
        hidden_weight: weight of the hidden-vertex term (the official code uses 0.3).
    """
    _check(image_colors, shaded, "projected_color_loss")
    v = visibility if visibility.ndim == 3 else visibility.unsqueeze(-1)
    if v.shape != image_colors.shape[:2] + (1,):
        raise ValueError(f"visibility must be (B, V) or (B, V, 1) with V={image_colors.shape[1]}, got {tuple(visibility.shape)}")
    loss = ((image_colors - shaded).abs() * v).sum() / (3 * v.sum()).clamp(min=1.0)
    if hidden_weight:
        if shaded_3dmm is None:
            raise ValueError("hidden_weight needs shaded_3dmm, the 3DMM albedo under the same lighting")
        hidden = 1 - v
        loss = loss + hidden_weight * ((shaded_3dmm - shaded).abs() * hidden).sum() / (3 * hidden.sum()).clamp(min=1.0)
    return loss
