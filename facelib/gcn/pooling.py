"""A mesh hierarchy's sparse operators on a device, and the pooling layers that use them.

:class:`HierarchyOperators` turns a :class:`facelib.mesh.hierarchy.MeshHierarchy` into CSR buffers
(Laplacians L~_l, down-sampling D_l, up-sampling U_l and their transposes for the backward pass) so
that ``model.to(device)`` moves them with the weights. They are non-persistent buffers: a checkpoint
holds weights only, and the hierarchy is rebuilt (or read from its cache) where it is loaded.

Pooling is a fixed linear map per level (CoMA, Ranjan et al. 2018): x_{l+1} = D_l x_l going down,
x_l = U_l x_{l+1} going up, applied to every channel and batch element.
"""

from __future__ import annotations

import torch
from torch import nn

from facelib.gcn.sparse import to_csr, transpose_csr, vertexwise
from facelib.mesh.hierarchy import MeshHierarchy


class HierarchyOperators(nn.Module):
    """Per-level Laplacians and per-step down/up-sampling matrices as CSR buffers.

    Args:
        hierarchy: the mesh hierarchy (level 0 finest).

    Attributes:
        num_vertices: V_l per level.
    """

    def __init__(self, hierarchy: MeshHierarchy) -> None:
        super().__init__()
        self.num_vertices = hierarchy.num_vertices
        for level, lap in enumerate(hierarchy.laplacians):
            self.register_buffer(f"laplacian_{level}", to_csr(lap), persistent=False)
        for step, (down, up) in enumerate(zip(hierarchy.down, hierarchy.up)):
            self.register_buffer(f"down_{step}", to_csr(down), persistent=False)
            self.register_buffer(f"down_t_{step}", transpose_csr(down), persistent=False)
            self.register_buffer(f"up_{step}", to_csr(up), persistent=False)
            self.register_buffer(f"up_t_{step}", transpose_csr(up), persistent=False)

    @property
    def num_levels(self) -> int:
        return len(self.num_vertices)

    def _check_level(self, level: int, steps: bool = False) -> None:
        top = self.num_levels - (1 if steps else 0)
        if not 0 <= level < top:
            raise IndexError(f"level {level} is outside [0, {top}) for a hierarchy of {self.num_levels} levels")

    def laplacian(self, level: int) -> torch.Tensor:
        """L~ at ``level``, (V_l, V_l) sparse CSR."""
        self._check_level(level)
        return getattr(self, f"laplacian_{level}")

    def downsample(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """D_level x: (B, V_level, C) -> (B, V_{level+1}, C)."""
        self._check_level(level, steps=True)
        return vertexwise(getattr(self, f"down_{level}"), x, getattr(self, f"down_t_{level}"))

    def upsample(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """U_level x: (B, V_{level+1}, C) -> (B, V_level, C)."""
        self._check_level(level, steps=True)
        return vertexwise(getattr(self, f"up_{level}"), x, getattr(self, f"up_t_{level}"))

    def extra_repr(self) -> str:
        return " -> ".join(f"{n:,}" for n in self.num_vertices) + " vertices"


class MeshPool(nn.Module):
    """Down-sampling from ``level`` to ``level + 1``: (B, V_l, C) -> (B, V_{l+1}, C)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: torch.Tensor, operators: HierarchyOperators) -> torch.Tensor:
        return operators.downsample(x, self.level)

    def extra_repr(self) -> str:
        return f"level {self.level} -> {self.level + 1}"


class MeshUnpool(nn.Module):
    """Up-sampling from ``level + 1`` to ``level``: (B, V_{l+1}, C) -> (B, V_l, C)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: torch.Tensor, operators: HierarchyOperators) -> torch.Tensor:
        return operators.upsample(x, self.level)

    def extra_repr(self) -> str:
        return f"level {self.level + 1} -> {self.level}"
