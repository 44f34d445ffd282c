"""Vertex normals of triangle meshes."""

from __future__ import annotations

import torch


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals.

    Each triangle's unnormalised normal (v1 - v0) x (v2 - v0), whose length is twice its area, is
    added to its three vertices, and the sums are normalised.

    Args:
        vertices: (B, V, 3).
        triangles: (F, 3) long, counter-clockwise seen from the outside.

    Returns:
        (B, V, 3) unit normals (zero for unreferenced vertices).
    """
    tri = vertices[:, triangles]  # (B, F, 3, 3)
    face_n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals = normals.index_add(1, triangles[:, corner], face_n)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
