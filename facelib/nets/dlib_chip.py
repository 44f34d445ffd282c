"""facelib's aligned crop -> the chip dlib's face-recognition network reads (:mod:`facelib.nets.dlib_resnet`).

:func:`crop_to_chip` resamples facelib's aligned crops (any square size, see :mod:`facelib.data.align`)
differentiably to the chip geometry dlib's ``get_face_chip(img, shape, size=150, padding=0.25)``
produces from its 5-point landmarks.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from facelib.morphable import load_open_model
from facelib.nets.dlib_resnet import CHIP_SIZE
from facelib.render.camera import Camera

CHIP_PADDING = 0.25
"""The padding ``compute_face_descriptor`` uses around its 5-point template."""
MIN_CROP_SIDE = 32
"""Smaller crops carry too little of a face to resample to a 150 x 150 chip meaningfully."""

# dlib's 5-point chip template (dlib/image_transforms/interpolation.h, get_face_chip_details), in
# the unit square before padding: the image-right eye's outer and inner corner, the image-left eye's
# outer and inner corner, the base of the nose. The iBUG 68 landmarks at those places: 45, 42, 36, 39, 33.
DLIB_CHIP_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                               [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                               [0.4901123135679, 0.6277975316475]])
DLIB_FIVE_FROM_68 = (45, 42, 36, 39, 33)

# Where dlib's 5 points sit on facelib's template face, in units of the crop side (facelib's
# convention: pixel centres at +0.5, the crop spans [0, 1]): the open face model's mean shape, iBUG
# landmarks 45, 42, 36, 39, 33, seen by the crop's camera (Camera.deng at any size; the points scale
# with it). template_dlib_points() recomputes them; tests/test_identity_dlib.py holds the two together.
# dlib's chip of an aligned crop is then get_face_chip(crop, these points * side, 150, 0.25).
TEMPLATE_DLIB_POINTS = np.array([[0.69074059, 0.38399036], [0.58351707, 0.38857532], [0.30918268, 0.38399822],
                                 [0.41639417, 0.38865955], [0.50042892, 0.60354798]])


def dlib_chip_to_image(points: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The affine map dlib's ``get_face_chip`` samples with, from its 5 landmarks.

    Mirrors dlib's ``get_face_chip_details`` and ``get_mapping_to_chip``: a similarity from the padded
    template to the landmarks, turned into a rectangle and an angle, whose corners go to the chip's
    corner pixels (dlib's rectangles count pixels inclusively). dlib's convention
    throughout: pixel centres at integer coordinates.

    Args:
        points: (5, 2) dlib's 5 landmarks (image-right eye outer, inner; image-left eye outer,
            inner; nose base) in image pixels.

    Returns:
        (3, 3) homogeneous matrix: chip pixel (c, r, 1) -> image point (x, y, 1).
    """
    template = (padding + DLIB_CHIP_TEMPLATE) / (2 * padding + 1) * size
    m = _similarity(template, np.asarray(points, dtype=np.float64))
    scale_rot = m[:2, :2] @ np.array([1.0, 0.0])
    angle, scale = np.arctan2(scale_rot[1], scale_rot[0]), np.hypot(*scale_rot)
    centre = m[:2, :2] @ np.array([size / 2.0, size / 2.0]) + m[:2, 2]
    # dlib's rectangles count pixels inclusively (width = right - left + 1), so the corner pixels
    # 0 and size - 1 sit at centre -+ (size * scale - 1) / 2, rotated by the angle.
    step = (size * scale - 1) / (size - 1)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = np.eye(3)
    out[:2, :2] = step * rot
    out[:2, 2] = centre - step * rot @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return out


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) source -> target, as a (3, 3) homogeneous matrix."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(xt.T @ xs / len(source))
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sigma * d).sum() / (xs ** 2).sum(1).mean()
    out = np.eye(3)
    out[:2, :2] = scale * rot
    out[:2, 2] = mu_t - scale * rot @ mu_s
    return out


def template_dlib_points(size: int = 224) -> np.ndarray:
    """Recomputes :data:`TEMPLATE_DLIB_POINTS` from the open face model (built on first use).

    Returns:
        (5, 2) dlib's 5 points (iBUG 45, 42, 36, 39, 33) of the mean face under
        :meth:`Camera.deng(size) <facelib.render.camera.Camera.deng>`, frontal (the pose
        :mod:`facelib.data.align`'s template comes from), divided by ``size``.
    """
    model = load_open_model(level=0, verbose=False)
    landmarks = Camera.deng(size).project(model.landmarks_3d(model.mean_shape[None]))[0, :, :2].double().numpy()
    return landmarks[list(DLIB_FIVE_FROM_68)] / size


def chip_to_crop(side: int, points: np.ndarray | None = None) -> np.ndarray:
    """The map from dlib's chip pixels to a ``side`` x ``side`` crop, in units of the crop side.

    Args:
        side: the crop's side in pixels (dlib's chip geometry counts pixels, so it depends on it
            slightly).
        points: (5, 2) dlib's 5 points in crop units (default :data:`TEMPLATE_DLIB_POINTS`).

    Returns:
        (2, 3) chip pixel (c, r, 1), dlib's integer centres -> crop point / side, facelib's convention.
    """
    points = TEMPLATE_DLIB_POINTS if points is None else np.asarray(points, dtype=np.float64)
    m = dlib_chip_to_image(points * side - 0.5)  # facelib's +0.5 centres -> dlib's integer ones
    m[:2, 2] += 0.5
    return m[:2] / side


@functools.lru_cache(maxsize=8)
def _chip_grid(side: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """(1, 150, 150, 2) grid_sample coordinates (align_corners=False) of the chip's pixels in a crop."""
    rows, cols = torch.meshgrid(torch.arange(CHIP_SIZE, dtype=torch.float64), torch.arange(CHIP_SIZE, dtype=torch.float64), indexing="ij")
    m = torch.from_numpy(chip_to_crop(side))
    u = m[0, 0] * cols + m[0, 1] * rows + m[0, 2]  # crop units: 0 = left edge, 1 = right edge
    v = m[1, 0] * cols + m[1, 1] * rows + m[1, 2]
    return (torch.stack([u, v], -1) * 2 - 1)[None].to(dtype=dtype, device=device)


def check_crops(images: torch.Tensor, square: bool = True) -> None:
    """Raises ValueError unless ``images`` are (B, H, W, 3) float crops in [0, 1]-ish (see :func:`crop_to_chip`)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"face crops must be (B, H, W, 3) RGB tensors in [0, 1], got {shape}; a single crop (H, W, 3) "
                         "needs crop[None]; a (B, 3, H, W) batch needs .permute(0, 2, 3, 1)")
    if not images.is_floating_point():
        raise ValueError(f"face crops must be float in [0, 1], got {images.dtype}: use images.float() / 255")
    h, w = images.shape[1:3]
    if square and h != w:
        raise ValueError(f"face crops must be square (facelib's aligned crops are; see facelib.data.align_face), got {h} x {w}")
    if min(h, w) < MIN_CROP_SIDE:
        raise ValueError(f"face crops of {h} x {w} pixels are too small for the identity network (at least {MIN_CROP_SIDE})")
    if images.numel():
        lo, hi = torch.aminmax(images.detach())
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError("face crops contain NaN or infinite values")
        # Unclamped renders overshoot [0, 1] a little; 0..255 images are the mistake to catch.
        if lo < -1.0 or hi > 2.0:
            raise ValueError(f"face crops must be in [0, 1], got values from {lo.item():.3g} to {hi.item():.3g}"
                             + ("; 8-bit images need / 255" if hi > 2.0 else ""))


def crop_to_chip(images: torch.Tensor) -> torch.Tensor:
    """Resamples facelib's aligned crops to dlib's 150 x 150 chips, differentiably.

    Crops much larger than the chip's sampling step are first shrunk with an antialiased bilinear
    resize (so that the chip does not alias); then one bilinear ``grid_sample`` applies
    :func:`chip_to_crop`. Pixels outside the crop repeat its border, as facelib's alignment does.

    Args:
        images: (B, S, S, 3) aligned crops in [0, 1] (facelib's template at any size S >= 32).

    Returns:
        (B, 150, 150, 3) chips, clamped to [0, 1] (dlib's chips are 8-bit: brighter than white
        carries no identity).
    """
    check_crops(images)
    x = images.permute(0, 3, 1, 2)
    side = x.shape[-1]
    # The crop side at which one chip pixel covers one crop pixel: shrink larger crops to it first
    # (antialiased), since bilinear sampling alone skips pixels and aliases.
    natural = int(round(1.0 / float(np.hypot(*chip_to_crop(side)[:, 0]))))
    work = natural if side > 1.5 * natural else side
    if work != side:
        x = F.interpolate(x, size=(work, work), mode="bilinear", align_corners=False, antialias=True)
    # A shrunk crop keeps its units (an align_corners=False resize maps edges to edges).
    grid = _chip_grid(side, x.dtype, str(x.device)).expand(x.shape[0], -1, -1, -1)
    chips = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return chips.clamp(0.0, 1.0).permute(0, 2, 3, 1)
