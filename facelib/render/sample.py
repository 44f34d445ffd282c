"""Image colours at projected vertices, with a visibility flag: the T_p of Lin et al. (2020).

The Refiner GCN sees, for every vertex, the colour of the photo where that vertex lands and
whether the vertex can be seen there. Sampling is bilinear, so it is differentiable with respect
to the image and to the projected positions (and through them to shape and pose).

A vertex is *visible* when all of these hold:

* it projects inside the image;
* it faces the camera, when normals are given: n . (c - p) > 0 with c the camera centre;
* it passes the depth test: at one of the (up to four) covered pixel centres around its
  projection, the z-buffer's depth is no nearer than the vertex's own depth minus a tolerance,
  ``z_vertex <= z_buffer + tolerance * z_vertex``. A vertex hidden behind the nose or the
  cheek has a z-buffer depth that is clearly smaller than its own.

Visibility is a hard 0/1 flag and carries no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class VertexSamples:
    """What :func:`sample_vertex_colors` returns.

    Attributes:
        colors: (B, V, C) image colour at each projected vertex (zero where not visible).
        visibility: (B, V) float, 1 where the vertex is visible, else 0.
    """

    colors: torch.Tensor
    visibility: torch.Tensor


def sample_image(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of an image at pixel positions.

    Pixel centres sit at (j + 0.5, i + 0.5), as in :class:`~facelib.render.Camera`; points
    outside the image read the border colour.

    Args:
        image: (B, H, W, C) images.
        points: (B, N, 2) pixel positions (x right, y down).

    Returns:
        (B, N, C) sampled values, differentiable with respect to ``image`` and ``points``.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, H, W, C), got {tuple(image.shape)}")
    if points.ndim != 3 or points.shape[-1] != 2 or points.shape[0] != image.shape[0]:
        raise ValueError(f"points must be (B={image.shape[0]}, N, 2), got {tuple(points.shape)}")
    _, h, w, _ = image.shape
    # grid_sample with align_corners=False maps -1 and +1 to the outer edges of the image, which
    # is exactly the half-pixel-centre convention.
    grid = torch.stack([points[..., 0] / w * 2 - 1, points[..., 1] / h * 2 - 1], -1)
    out = F.grid_sample(image.permute(0, 3, 1, 2), grid[:, None].to(image.dtype), mode="bilinear",
                        padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2)


@torch.no_grad()
def vertex_visibility(screen: torch.Tensor, zbuf: torch.Tensor, normals: torch.Tensor | None = None,
                      points: torch.Tensor | None = None, camera_distance: float = 10.0,
                      tolerance: float = 0.01) -> torch.Tensor:
    """Which vertices are seen by the camera (see the module docstring for the rule).

    Args:
        screen: (B, V, 3) projected vertices (pixel x, pixel y, depth).
        zbuf: (B, H, W) depth of the visible surface, -1 on background (``Fragments.zbuf``).
        normals: (B, V, 3) posed vertex normals, for the facing test (optional).
        points: (B, V, 3) posed vertices, needed with ``normals``.
        camera_distance: the camera sits at (0, 0, camera_distance).
        tolerance: relative depth tolerance of the depth test.

    Returns:
        (B, V) float, 1 for visible vertices.
    """
    if screen.ndim != 3 or screen.shape[-1] != 3:
        raise ValueError(f"screen must be (B, V, 3), got {tuple(screen.shape)}")
    if zbuf.ndim != 3 or zbuf.shape[0] != screen.shape[0]:
        raise ValueError(f"zbuf must be (B={screen.shape[0]}, H, W), got {tuple(zbuf.shape)}")
    b, v, _ = screen.shape
    _, h, w = zbuf.shape
    x, y, depth = screen.unbind(-1)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h) & (depth > 0)
    # The four pixel centres around the projection.
    c0 = torch.floor(x - 0.5).long()
    r0 = torch.floor(y - 0.5).long()
    passes = torch.zeros(b, v, dtype=torch.bool, device=screen.device)
    flat = zbuf.reshape(b, h * w)
    for dr in (0, 1):
        for dc in (0, 1):
            r, c = r0 + dr, c0 + dc
            ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            z = flat.gather(1, (r.clamp(0, h - 1) * w + c.clamp(0, w - 1)))
            covered = ok & (z > 0)
            passes |= covered & (depth <= z + tolerance * depth)
    visible = inside & passes
    if normals is not None:
        if points is None:
            raise ValueError("the facing test needs the posed points along with the normals")
        to_camera = -points
        to_camera[..., 2] += camera_distance
        visible &= (normals * to_camera).sum(-1) > 0
    return visible.to(screen.dtype)


def sample_vertex_colors(image: torch.Tensor, screen: torch.Tensor, zbuf: torch.Tensor,
                         normals: torch.Tensor | None = None, points: torch.Tensor | None = None,
                         camera_distance: float = 10.0, tolerance: float = 0.01) -> VertexSamples:
    """Image colours at the projected vertices and their visibility (T_p in Lin et al.).

    Args:
        image: (B, H, W, C) the photos, the same size as the z-buffer.
        screen: (B, V, 3) projected vertices (pixel x, pixel y, depth) from ``Camera.project``.
        zbuf: (B, H, W) the rendered z-buffer (``Rendering.depth`` or ``Fragments.zbuf``).
        normals, points: (B, V, 3) posed normals and vertices for the facing test (optional).
        camera_distance: the camera sits at (0, 0, camera_distance).
        tolerance: relative depth tolerance of the depth test.

    Returns:
        :class:`VertexSamples`: colours (zero where hidden) and the 0/1 visibility.
    """
    if image.shape[1:3] != zbuf.shape[1:]:
        raise ValueError(f"image {tuple(image.shape[1:3])} and z-buffer {tuple(zbuf.shape[1:])} sizes differ: "
                         "render at the image's size")
    visibility = vertex_visibility(screen, zbuf, normals, points, camera_distance, tolerance)
    colors = sample_image(image, screen[..., :2]) * visibility.unsqueeze(-1)
    return VertexSamples(colors, visibility)
