"""The camera of Deng et al. (2019): Euler-angle rotation, translation and a pinhole projection.

Conventions (BFM and facelib's open model alike): model units are decimetres, the face looks along
+z, the camera sits at z = 10 looking down -z, focal length 1015 px for a 224 x 224 image with the
principal point at the image centre. For other image sizes the focal length and principal point
scale with the image, so the face fills the same fraction of the picture.

Image coordinates: x to the right, y down, the centre of pixel (row i, column j) at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DENG_FOCAL = 1015.0
DENG_IMAGE_SIZE = 224
CAMERA_DISTANCE = 10.0


def euler_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices R = Rz(c) Ry(b) Rx(a) from Euler angles, as in Deng et al.

    Args:
        angles: (B, 3) angles (a, b, c) in radians about x (pitch), y (yaw), z (roll).

    Returns:
        (B, 3, 3) rotation matrices; a column vector v is rotated as R v.
    """
    if angles.ndim != 2 or angles.shape[-1] != 3:
        raise ValueError(f"angles must be (B, 3), got {tuple(angles.shape)}")
    a, b, c = angles.unbind(-1)
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()], -1).view(-1, 3, 3)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()], -1).view(-1, 3, 3)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


NEAR_DEPTH = 1e-3
"""The smallest depth a projection divides by (the rasterizer's near plane, :data:`facelib.render.rasterize.NEAR`)."""


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at (0, 0, ``distance``) looking down -z.

    Attributes:
        image_size: (H, W) in pixels.
        focal: focal length in pixels.
        distance: camera position on the z axis, in model units.
    """

    image_size: tuple[int, int] = (DENG_IMAGE_SIZE, DENG_IMAGE_SIZE)
    focal: float = DENG_FOCAL
    distance: float = CAMERA_DISTANCE

    @classmethod
    def deng(cls, size: int | tuple[int, int] = DENG_IMAGE_SIZE) -> "Camera":
        """Deng et al.'s camera, with focal length scaled from 1015 px at 224 px to ``size``."""
        h, w = (size, size) if isinstance(size, int) else size
        return cls(image_size=(h, w), focal=DENG_FOCAL * min(h, w) / DENG_IMAGE_SIZE)

    @property
    def principal_point(self) -> tuple[float, float]:
        """(cx, cy) in pixels: the image centre."""
        h, w = self.image_size
        return w / 2.0, h / 2.0

    def transform(self, vertices: torch.Tensor, angles: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """Rigid pose in model space: R(angles) v + t.  (B, V, 3) -> (B, V, 3)."""
        rotation = euler_rotation(angles)
        return vertices @ rotation.transpose(1, 2) + translation[:, None, :]

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Perspective projection of posed points to pixels.

        Args:
            points: (B, V, 3) posed points in model space.

        Returns:
            (B, V, 3): pixel x, pixel y, and depth (distance along the viewing axis, > 0 in front).
            A point at or behind the camera keeps its true depth (<= 0, so that the rasterizer drops
            every triangle touching it) and gets finite pixel coordinates, divided by the near depth
            instead of by its own: dividing by 0 would put NaN into the image coordinates and, through
            the backward pass, into the gradients of the whole shape, although no pixel uses the point.
        """
        depth = self.distance - points[..., 2]
        safe = depth.clamp(min=NEAR_DEPTH)
        cx, cy = self.principal_point
        x = cx + self.focal * points[..., 0] / safe
        y = cy - self.focal * points[..., 1] / safe
        return torch.stack([x, y, depth], dim=-1)
