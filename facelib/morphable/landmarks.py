"""The 68 iBUG 300-W landmarks and the 5-point alignment subset, on a morphable model's vertices.

Order (0-based): jaw 0-16, right brow 17-21, left brow 22-26, nose bridge 27-30, nose base 31-35,
right eye 36-41, left eye 42-47, outer lips 48-59, inner lips 60-67. "Right" is the person's right,
which appears on the image's left; in model space (the face looking along +z) it is -x.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68

# Each landmark's mirror partner (itself on the midline).
MIRROR_68: tuple[int, ...] = tuple(
    [16 - i for i in range(17)]
    + [26 - i for i in range(5)] + [21 - i for i in range(5)]
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)
MIDLINE_68: tuple[int, ...] = tuple(i for i, j in enumerate(MIRROR_68) if i == j)

# Deng et al.'s 68-landmark loss weights (0-based, as in their code): 20 on 28-30 (lower nose
# bridge) and 60-67 (inner lips), 1 elsewhere.
LANDMARK_WEIGHTS_68 = np.ones(NUM_LANDMARKS, dtype=np.float32)
LANDMARK_WEIGHTS_68[28:31] = 20.0
LANDMARK_WEIGHTS_68[60:68] = 20.0

FIVE_POINT_NAMES = ("right eye centre", "left eye centre", "nose tip", "right mouth corner", "left mouth corner")
"""The 5 points MTCNN detects, in MTCNN's order (image-left eye first)."""

# A mean 68-point face in image coordinates (x right, y down, unit box), rounded from the
# template published with OpenFace (align_dlib.py, Apache-2.0). It is only the starting guess
# that the builder snaps onto the mesh surface and symmetrises; the model stores vertex indices.
MEAN_FACE_68 = np.array([
    (0.079, 0.339), (0.083, 0.457), (0.097, 0.576), (0.122, 0.692), (0.169, 0.800), (0.240, 0.896),
    (0.326, 0.977), (0.422, 1.043), (0.532, 1.061), (0.641, 1.040), (0.738, 0.972), (0.824, 0.890),
    (0.895, 0.792), (0.939, 0.682), (0.961, 0.562), (0.971, 0.442), (0.971, 0.322), (0.164, 0.249),
    (0.218, 0.204), (0.291, 0.192), (0.367, 0.204), (0.439, 0.233), (0.586, 0.228), (0.660, 0.196),
    (0.737, 0.182), (0.813, 0.193), (0.871, 0.235), (0.515, 0.319), (0.516, 0.396), (0.517, 0.474),
    (0.518, 0.553), (0.434, 0.604), (0.476, 0.621), (0.521, 0.634), (0.566, 0.619), (0.607, 0.602),
    (0.252, 0.331), (0.299, 0.303), (0.356, 0.303), (0.404, 0.339), (0.353, 0.350), (0.297, 0.350),
    (0.631, 0.334), (0.679, 0.296), (0.736, 0.295), (0.783, 0.321), (0.740, 0.342), (0.685, 0.344),
    (0.353, 0.746), (0.415, 0.719), (0.478, 0.707), (0.523, 0.717), (0.570, 0.705), (0.635, 0.716),
    (0.700, 0.739), (0.639, 0.805), (0.576, 0.835), (0.525, 0.842), (0.476, 0.838), (0.414, 0.810),
    (0.380, 0.750), (0.478, 0.745), (0.523, 0.749), (0.571, 0.743), (0.672, 0.744), (0.573, 0.777),
    (0.524, 0.783), (0.478, 0.778),
], dtype=np.float64)


def five_from_68(points):
    """The 5 alignment points from 68 landmarks, in MTCNN's order (eye centres, nose tip, mouth
    corners). Works on numpy arrays and torch tensors: (..., 68, D) -> (..., 5, D)."""
    right_eye = points[..., 36:42, :].mean(-2)
    left_eye = points[..., 42:48, :].mean(-2)
    parts = [right_eye, left_eye, points[..., 30, :], points[..., 48, :], points[..., 54, :]]
    if isinstance(points, np.ndarray):
        return np.stack(parts, axis=-2)
    import torch

    return torch.stack(parts, dim=-2)
