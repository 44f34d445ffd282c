"""Left/right symmetry of meshes that are symmetric about the x = 0 plane."""

from __future__ import annotations

import numpy as np


def mirror_by_position(vertices: np.ndarray) -> np.ndarray:
    """Each vertex's mirror partner: the vertex nearest to its reflection (x -> -x).

    Args:
        vertices: (V, 3) positions of a mesh symmetric about x = 0.

    Returns:
        (V,) int64 indices.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(vertices, dtype=np.float64)
    _, partner = cKDTree(points).query(points * np.array([-1.0, 1.0, 1.0]))
    return partner.astype(np.int64)
