"""Face detection (MTCNN) and 5-point similarity alignment to the face model's own template.

Deng et al. align every photo by its five landmarks (eye centres, nose tip, mouth corners) with a
similarity transform (rotation, uniform scale, translation) onto a fixed template, then crop
224 x 224. facelib's template is the face model's mean five points seen by the default camera
(:meth:`Camera.deng` at the crop size, frontal pose, no translation), so an aligned photo starts
where a fit starts: the mean face in its rest pose already lines up with it.

The similarity transform is the least-squares one (Umeyama, 1991): for source points x_i and
template points y_i it minimises sum_i ||s R x_i + t - y_i||^2 over scale s, rotation R and t.

Detection uses facenet-pytorch's MTCNN, whose weights ship inside its wheel (no download).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facelib.data.images import ImageError, image_to_tensor, load_rgb, to_upright_rgb
from facelib.render.camera import Camera
from facelib.render.sample import sample_image
from facelib.morphable import load_open_model

MIN_IMAGE_SIDE = 32
"""Photos smaller than this on either side cannot hold a detectable face."""


class NoFaceError(ImageError):
    """The detector found no face in the photo."""


@dataclass
class Detection:
    """One face found by MTCNN.

    Attributes:
        box: (4,) x0, y0, x1, y1 in pixels of the photo.
        score: the detector's confidence in [0, 1].
        points: (5, 2) left eye, right eye (as seen in the image), nose tip, left and right mouth corner.
    """

    box: torch.Tensor
    score: float
    points: torch.Tensor

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box.tolist()
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


@dataclass
class AlignedFace:
    """A face cropped and aligned to the template.

    Attributes:
        image: (S, S, 3) float crop in [0, 1].
        points: (5, 2) the detected five points, in crop pixels.
        matrix: (2, 3) affine map from photo pixels to crop pixels (x_crop = M [x, y, 1]).
        inverse: (2, 3) the map from crop pixels back to photo pixels.
        detection: the detection in photo pixels.
        photo_size: (H, W) of the photo.
    """

    image: torch.Tensor
    points: torch.Tensor
    matrix: torch.Tensor
    inverse: torch.Tensor
    detection: Detection
    photo_size: tuple[int, int]

    def paste(self, photo: torch.Tensor, crop: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Composites a crop-sized rendering back onto the photo.

        Args:
            photo: (H, W, 3) the original photo.
            crop: (S, S, 3) an image in crop coordinates (e.g. a rendered face).
            mask: (S, S) where ``crop`` replaces the photo (0..1).

        Returns:
            (H, W, 3) the photo with the crop pasted over it.
        """
        h, w = photo.shape[:2]
        crop, mask = crop.to(photo), mask.to(photo)
        # Warping repeats border pixels outside the crop: clear the mask's outer ring so that
        # nothing leaks past the crop's edges.
        mask = mask.clone()
        mask[[0, -1], :] = 0
        mask[:, [0, -1]] = 0
        back = warp_affine(torch.cat([crop, mask[..., None]], -1), self.inverse.to(photo), (h, w), self.matrix.to(photo))
        alpha = back[..., 3:]
        return photo * (1 - alpha) + back[..., :3] * alpha


@functools.lru_cache(maxsize=2)
def _mtcnn(device: str):
    try:
        from facenet_pytorch import MTCNN
    except ImportError as err:
        raise ImportError("face detection needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0") from err

    return MTCNN(keep_all=True, device=device)


def detect_faces(image: Image.Image, device: str = "cpu") -> list[Detection]:
    """All faces MTCNN finds in an RGB photo, largest first.

    Args:
        image: an RGB ``PIL.Image`` (use :func:`~facelib.data.images.load_rgb`).
        device: where MTCNN runs.

    Returns:
        A list of :class:`Detection`, empty when there is no face.
    """
    if min(image.size) < MIN_IMAGE_SIDE:
        raise ImageError(f"the photo is {image.size[0]} x {image.size[1]} pixels: too small to find a face in "
                         f"(at least {MIN_IMAGE_SIDE} on each side; faces of 80 pixels or more work best)")
    boxes, probs, points = _mtcnn(device).detect(image.convert("RGB"), landmarks=True)
    if boxes is None:
        return []
    # With numpy 2, facenet-pytorch hands back object arrays: convert element by element. MTCNN puts
    # pixel centres at integer coordinates; facelib at +0.5 (see facelib.render.camera).
    found = [Detection(torch.tensor(np.asarray(b, dtype=np.float32)) + 0.5, float(p), torch.tensor(np.asarray(q, dtype=np.float32)) + 0.5)
             for b, p, q in zip(boxes, probs, points)]
    return sorted(found, key=lambda d: d.area, reverse=True)


@functools.lru_cache(maxsize=8)
def _template_points(size: int) -> torch.Tensor:
    model = load_open_model(level=0)
    camera = Camera.deng(size)
    return camera.project(model.five_points(model.mean_shape[None]))[0, :, :2].detach()


def template_points(size: int = 224) -> torch.Tensor:
    """(5, 2) the open face model's mean five points under Deng's camera at ``size`` x ``size`` (a copy)."""
    return _template_points(size).clone()


def similarity_transform(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The least-squares similarity transform taking ``source`` points onto ``target`` (Umeyama).

    Args:
        source: (N, 2) points, N >= 2.
        target: (N, 2) points.

    Returns:
        (2, 3) matrix M = [s R | t] with target ~ s R source + t, R a rotation (no reflection).
    """
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or source.shape[0] < 2:
        raise ValueError(f"need two (N >= 2, 2) point sets, got {tuple(source.shape)} and {tuple(target.shape)}")
    if not (torch.isfinite(source).all() and torch.isfinite(target).all()):
        raise ValueError("the landmarks contain NaN or infinite values")
    src, dst = source.double(), target.double()
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, sigma, vt = torch.linalg.svd(cov)
    d = torch.ones(2, dtype=torch.float64)
    if torch.det(u) * torch.det(vt) < 0:
        d[-1] = -1
    rotation = u @ torch.diag(d) @ vt
    spread = xs.pow(2).sum(1).mean()
    if spread < 1e-12:
        raise ValueError("the source points all coincide: a similarity transform needs at least two distinct points")
    scale = (sigma * d).sum() / spread
    t = mu_d - scale * rotation @ mu_s
    return torch.cat([scale * rotation, t[:, None]], 1).to(source.dtype)


def invert_affine(matrix: torch.Tensor) -> torch.Tensor:
    """The inverse of a (2, 3) affine map."""
    full = torch.cat([matrix, matrix.new_tensor([[0.0, 0.0, 1.0]])], 0)
    return torch.linalg.inv(full)[:2]


def apply_affine(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Maps (N, 2) points with a (2, 3) affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_affine(image: torch.Tensor, matrix: torch.Tensor, size: int | tuple[int, int],
                inverse: torch.Tensor | None = None) -> torch.Tensor:
    """Resamples an image under an affine map (bilinear, pixel centres at +0.5).

    Args:
        image: (H, W, C) source image.
        matrix: (2, 3) map from source pixels to output pixels.
        size: output (H, W), or an int for a square.
        inverse: the inverse of ``matrix`` when already known.

    Returns:
        (H_out, W_out, C) warped image; outside the source the border colour is repeated.
    """
    h, w = (size, size) if isinstance(size, int) else size
    inverse = invert_affine(matrix) if inverse is None else inverse
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype, device=image.device) + 0.5,
                            torch.arange(w, dtype=image.dtype, device=image.device) + 0.5, indexing="ij")
    source = apply_affine(inverse.to(image), torch.stack([xs, ys], -1).view(-1, 2))
    return sample_image(image[None], source[None])[0].view(h, w, -1)


def align_face(photo: str | Path | Image.Image, size: int = 224, device: str = "cpu") -> AlignedFace:
    """Detects the largest face in a photo and aligns it to the template.

    Args:
        photo: a path or an RGB ``PIL.Image``.
        size: the side of the square crop (Deng et al. use 224).
        device: where the detector runs.

    Returns:
        :class:`AlignedFace`.

    Raises:
        ImageError: unreadable or too small photo.
        NoFaceError: no face found.
    """
    faces = align_faces(photo, size, device, largest_only=True)
    return faces[0]


def align_faces(photo: str | Path | Image.Image, size: int = 224, device: str = "cpu",
                largest_only: bool = False, name: str | None = None) -> list[AlignedFace]:
    """Like :func:`align_face`, for every face in the photo (largest first).

    ``name``: how error messages call the photo (default: its path, or "the photo" for an image).
    """
    name = name or (str(photo) if not isinstance(photo, Image.Image) else "the photo")
    image = load_rgb(photo) if not isinstance(photo, Image.Image) else to_upright_rgb(photo)
    detections = detect_faces(image, device)
    if not detections:
        raise NoFaceError(f"{name}: no face found. facelib needs a photo with a face of at least about "
                          "40 pixels, seen roughly from the front (up to about 60 degrees of turn)")
    pixels = image_to_tensor(image)
    template = template_points(size)
    out = []
    for det in detections[:1] if largest_only else detections:
        matrix = similarity_transform(det.points, template)
        inverse = invert_affine(matrix)
        crop = warp_affine(pixels, matrix, size, inverse)
        out.append(AlignedFace(crop, apply_affine(matrix, det.points), matrix, inverse, det, (image.height, image.width)))
    return out
