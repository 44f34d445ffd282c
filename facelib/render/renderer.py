"""``FaceRenderer``: a morphable model's shape, albedo, pose and lighting to an image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facelib.mesh.normals import vertex_normals
from facelib.render.camera import Camera, euler_rotation
from facelib.render.lighting import AMBIENT_IRRADIANCE, shade
from facelib.render.rasterize import Fragments, rasterize
from facelib.render.sample import VertexSamples, sample_vertex_colors


@dataclass
class Rendering:
    """What :meth:`FaceRenderer.render` returns.

    Attributes:
        image: (B, H, W, 3) shaded colour, zero on background.
        mask: (B, H, W) coverage (1 where the face is).
        depth: (B, H, W) depth of the visible surface (-1 on background).
        pix_to_face: (B, H, W) visible triangle per pixel (-1 on background).
        landmarks: (B, 68, 2) projected landmarks in pixels, or None when the model has none.
        screen: (B, V, 3) projected vertices (pixel x, pixel y, depth).
        colors: (B, V, 3) shaded per-vertex colours.
        points: (B, V, 3) posed vertices (model space after rotation and translation).
        normals: (B, V, 3) posed unit vertex normals.
        fragments: the raw rasterizer output (for interpolating more attributes).
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    pix_to_face: torch.Tensor
    landmarks: torch.Tensor | None
    screen: torch.Tensor
    colors: torch.Tensor
    points: torch.Tensor
    normals: torch.Tensor
    fragments: Fragments


class FaceRenderer:
    """Renders faces with Deng et al.'s camera and SH lighting.

    Args:
        triangles: (F, 3) the mesh's triangles.
        camera: the camera (default: Deng's at 224 x 224).
        landmarks: (68,) landmark vertex indices, to project with each render.
        backend: rasterizer backend ("auto", "torch" or "pytorch3d").
    """

    def __init__(self, triangles: torch.Tensor, camera: Camera | None = None, landmarks: torch.Tensor | None = None, backend: str = "auto") -> None:
        self.triangles = triangles.long()
        self.camera = camera or Camera.deng()
        self.landmarks = landmarks
        self.backend = backend

    @classmethod
    def for_model(cls, model, size: int | tuple[int, int] = 224, backend: str = "auto") -> "FaceRenderer":
        """A renderer for a :class:`~facelib.morphable.MorphableModel` at image ``size``."""
        return cls(model.triangles, Camera.deng(size), model.landmarks, backend)

    def render(self, vertices: torch.Tensor, albedo: torch.Tensor, angles: torch.Tensor | None = None,
               translation: torch.Tensor | None = None, gamma: torch.Tensor | None = None) -> Rendering:
        """Renders a batch.

        Args:
            vertices: (B, V, 3) shapes in model space.
            albedo: (B, V, 3) per-vertex albedo.
            angles: (B, 3) Euler angles (default 0: frontal).
            translation: (B, 3) (default 0).
            gamma: (B, 27) SH lighting (default 0: the ambient offset alone).
        """
        b = vertices.shape[0]
        zeros = vertices.new_zeros(b, 3)
        angles = zeros if angles is None else angles
        translation = zeros if translation is None else translation
        gamma = vertices.new_zeros(b, 27) if gamma is None else gamma
        posed = vertices @ euler_rotation(angles).transpose(1, 2) + translation[:, None]
        normals = vertex_normals(posed, self.triangles)
        colors = shade(albedo, normals, gamma)
        screen = self.camera.project(posed)
        fragments = rasterize(screen, self.triangles, self.camera.image_size, backend=self.backend)
        image = fragments.interpolate(colors)
        landmarks = screen[:, self.landmarks, :2] if self.landmarks is not None else None
        return Rendering(image, fragments.mask, fragments.zbuf, fragments.pix_to_face, landmarks, screen, colors, posed, normals, fragments)

    def paint(self, vertices: torch.Tensor, colors: torch.Tensor, angles: torch.Tensor | None = None) -> Rendering:
        """Renders per-vertex colours as they are, without shading (to look at a field on the mesh).

        Args:
            vertices: (B, V, 3) shapes. colors: (B, V, 3) the colours to show. angles: (B, 3) pose.
        """
        return self.render(vertices, colors / AMBIENT_IRRADIANCE, angles)

    def turntable(self, vertices: torch.Tensor, albedo: torch.Tensor, yaws: tuple[float, ...] = (-0.9, -0.45, 0.0, 0.45, 0.9),
                  lit: bool = True) -> torch.Tensor:
        """One mesh seen from several sides: the static stand-in for a 3D viewer (stored notebooks, CI).

        Args:
            vertices: (V, 3) a shape in model space. albedo: (V, 3) its colours.
            yaws: the views' yaw angles in radians (turns about the vertical axis; 0 is frontal).
            lit: shade with a soft light from the front and a little above (False: the colours as they are).

        Returns:
            (len(yaws), H, W, 3) images in [0, 1], black background.
        """
        if vertices.ndim != 2 or albedo.shape != vertices.shape:
            raise ValueError(f"turntable takes one mesh: vertices and albedo (V, 3), got {tuple(vertices.shape)} and {tuple(albedo.shape)}")
        n = len(yaws)
        angles = vertices.new_zeros(n, 3)
        angles[:, 1] = torch.tensor(yaws, dtype=vertices.dtype, device=vertices.device)
        shapes, colors = vertices.detach()[None].expand(n, -1, -1), albedo.detach().clamp(0, 1)[None].expand(n, -1, -1)
        with torch.no_grad():
            if not lit:
                return self.paint(shapes, colors, angles).image.clamp(0, 1)
            gamma = vertices.new_zeros(n, 3, 9)
            gamma[:, :, 2], gamma[:, :, 1] = 0.3, -0.1  # SH band 1: light from the camera's side and a little above
            return self.render(shapes, colors, angles, gamma=gamma.view(n, 27)).image.clamp(0, 1)

    def sample_colors(self, image: torch.Tensor, rendering: Rendering, tolerance: float = 0.01) -> VertexSamples:
        """The photo's colour at each projected vertex of ``rendering`` and its visibility (T_p).

        Args:
            image: (B, H, W, 3) photos at the renderer's image size.
            rendering: the rendering of the fitted faces over those photos.
            tolerance: relative depth tolerance of the visibility test.
        """
        return sample_vertex_colors(image, rendering.screen, rendering.depth, rendering.normals, rendering.points,
                                    self.camera.distance, tolerance)
