"""Midpoint subdivision as a sparse linear map, so that morphable-model bases subdivide exactly.

Each triangle is split into four through its edge midpoints. Every new vertex is the average of
two old ones, so subdivision is a (V_new, V_old) sparse matrix S with S @ x for any per-vertex
quantity x: mean shapes, PCA bases (column by column) and colours all go through the same S.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def subdivide(triangles: np.ndarray, num_vertices: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """One level of midpoint subdivision.

    Args:
        triangles: (F, 3) vertex indices.
        num_vertices: V, the number of vertices the indices refer to.

    Returns:
        (4F, 3) triangles on the new vertices, and the (V + E, V) sparse subdivision matrix whose
        first V rows are the identity (old vertices keep their index).
    """
    tris = np.asarray(triangles, dtype=np.int64)
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edges.sort(axis=1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    inverse = inverse.reshape(3, -1).T + num_vertices  # (F, 3) midpoint index of edges 01, 12, 20
    a, b, c = tris.T
    ab, bc, ca = inverse.T
    new = np.stack([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)], 1)
    new = new.reshape(-1, 3)
    e = len(unique)
    rows = np.concatenate([np.arange(num_vertices), np.repeat(np.arange(num_vertices, num_vertices + e), 2)])
    cols = np.concatenate([np.arange(num_vertices), unique.reshape(-1)])
    vals = np.concatenate([np.ones(num_vertices), np.full(2 * e, 0.5)])
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(num_vertices + e, num_vertices))
    return new, matrix


def subdivision_levels(triangles: np.ndarray, num_vertices: int, levels: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """``levels`` rounds of :func:`subdivide`; returns the final triangles and the composed matrix."""
    matrix = sp.identity(num_vertices, format="csr")
    tris = np.asarray(triangles, dtype=np.int64)
    for _ in range(levels):
        tris, step = subdivide(tris, matrix.shape[0])
        matrix = (step @ matrix).tocsr()
    return tris, matrix
