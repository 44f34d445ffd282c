"""A rendering over the photo: the plain composite the losses see, and the feathered paste of an overlay.

The losses compare the photo with the rendering pasted into it, hard-edged at the rendered coverage
M_proj (Lin et al.: the background agrees, so the identity network and the critic look at the face):

    C = R M_proj + I (1 - M_proj).

An overlay for people is different: a hard edge shows the mesh's stepped outline, and near the
outline the face region covers hair, ears and collars. :func:`paste_alpha` keeps the rendering
inside the face and, in a rim along its outline, only where M_face says skin, then feathers the edge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facelib.render.renderer import Rendering


def composite(rendering: Rendering, photo: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) the rendering (clamped to [0, 1]) over the photo where the face covers it; differentiable."""
    if photo.shape != rendering.image.shape:
        raise ValueError(f"photo {tuple(photo.shape)} and rendering {tuple(rendering.image.shape)} differ: render at the photo's size")
    mask = rendering.mask.unsqueeze(-1)
    return rendering.image.clamp(0, 1) * mask + photo * (1 - mask)


def erode(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Shrinks a (B, H, W) 0/1 mask by ``pixels`` (a square structuring element)."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    return 1.0 - F.max_pool2d(1.0 - mask[:, None].float(), k, stride=1, padding=pixels)[:, 0]


def paste_alpha(coverage: torch.Tensor, skin: torch.Tensor | None = None, feather: float = 0.012, rim: float = 0.08) -> torch.Tensor:
    """Where an overlay's rendering replaces the photo, from 0 to 1.

    alpha = blur_r(erode_r(M_proj x max(M_face, inner))), with ``inner`` the coverage eroded by
    ``rim`` x side (there the rendering is kept whatever M_face says: eyes, brows and lips are not
    skin-coloured, but they are the face) and r = ``feather`` x side, a box blur applied twice.

    Args:
        coverage: (H, W) or (B, H, W) M_proj, the rendered coverage.
        skin: the same shape, M_face at this size (None: the coverage alone, feathered).
        feather: the width of the soft edge, as a share of the image side.
        rim: the width of the outer band where M_face decides, as a share of the image side.

    Returns:
        alpha, the shape of ``coverage``; 0 wherever the coverage is 0.
    """
    single = coverage.ndim == 2
    m = (coverage[None] if single else coverage).float()
    if skin is not None:
        s = (skin[None] if single else skin).to(m)
        if s.shape != m.shape:
            raise ValueError(f"skin {tuple(skin.shape)} and coverage {tuple(coverage.shape)} differ")
        inner = erode(m, round(rim * m.shape[-1]))
        m = m * torch.maximum(s, inner)
    r = max(1, round(feather * m.shape[-1]))
    soft = erode(m, r)[:, None]
    for _ in range(2):
        soft = F.avg_pool2d(soft, 2 * r + 1, 1, r, count_include_pad=False)
    alpha = soft[:, 0] * (coverage[None] if single else coverage).to(soft)  # nothing outside the face
    return alpha[0] if single else alpha
