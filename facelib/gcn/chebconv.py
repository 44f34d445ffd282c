"""Chebyshev spectral graph convolution (Defferrard et al. 2016), as used by CoMA and Lin et al.

A filter of order K on a graph with rescaled Laplacian L~ (:func:`facelib.mesh.graph.chebyshev_laplacian`):

    y = sum_{k=0}^{K-1} T_k(L~) x W_k + b,      T_0 = I,  T_1 = L~,  T_k = 2 L~ T_{k-1} - T_{k-2}

with x (V, C_in) per-vertex features, W_k (C_in, C_out) and b (C_out). T_k(L~) is a polynomial of
degree k in L~, so vertex i's output depends only on vertices at most K - 1 edges away: a local
filter with K C_in C_out weights, whatever the mesh size. The layer never forms T_k(L~); it runs the
recurrence on the features, X_0 = x, X_1 = L~ x, X_k = 2 L~ X_{k-1} - X_{k-2}: K - 1 sparse products.

:class:`ChebConv` stores W_k as ``lins[k]`` (``nn.Linear(C_in, C_out, bias=False)``, weight = W_k^T)
and b as ``bias``: the parameter names and shapes of ``torch_geometric.nn.ChebConv``, so
``ours.load_state_dict(theirs.state_dict())`` copies a trained PyG layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from facelib.gcn.sparse import sparse_addmm, sparse_matmul


class ChebConv(nn.Module):
    """Chebyshev graph convolution on batched per-vertex features.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        K: filter order (number of Chebyshev terms), >= 1; K = 1 is a per-vertex linear map.
            Lin et al. and their official code use K = 6.
        bias: add a learned per-channel bias b.

    Initialisation: W ~ N(0, 2 / (K C_in)), He initialisation over the whole filter bank as in the
    official code (its ``he_normal`` on the (K C_in, C_out) weight); bias zero.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int = 6, bias: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be positive, got {in_channels} -> {out_channels}")
        if K < 1:
            raise ValueError(f"the Chebyshev order K must be >= 1, got {K}")
        self.in_channels, self.out_channels, self.K = in_channels, out_channels, K
        self.lins = nn.ModuleList(nn.Linear(in_channels, out_channels, bias=False) for _ in range(K))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = math.sqrt(2.0 / (self.K * self.in_channels))
        for lin in self.lins:
            nn.init.normal_(lin.weight, 0.0, std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def weight_stack(self) -> torch.Tensor:
        """The filter bank as (K, C_in, C_out): W_k = ``lins[k].weight.T``."""
        return torch.stack([lin.weight.T for lin in self.lins])

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor | None) -> torch.Tensor:
        """Filters per-vertex features.

        Args:
            x: (B, V, C_in), or (V, C_in) for a single graph signal.
            laplacian: (V, V) rescaled Laplacian L~, sparse (CSR fastest) or dense; assumed symmetric
                (the gradient uses L~^T = L~). May be None when K = 1.

        Returns:
            (B, V, C_out), or (V, C_out) for a 2-D input.
        """
        single = x.ndim == 2
        if single:
            x = x.unsqueeze(0)
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"ChebConv expects (B, V, {self.in_channels}) or (V, {self.in_channels}) features, got {tuple(x.shape)}")
        b, v, c = x.shape
        if self.K > 1:
            if laplacian is None:
                raise ValueError(f"ChebConv with K={self.K} needs a Laplacian")
            if tuple(laplacian.shape) != (v, v):
                raise ValueError(f"the Laplacian is {tuple(laplacian.shape)} but the features have V={v} vertices")
        # Layout (V, B C): one sparse product per Chebyshev term serves the whole batch, and
        # (V B, C) views of the same memory feed the dense products with W_k.
        x0 = x.transpose(0, 1).reshape(v, b * c)
        terms = [x0]
        if self.K > 1:
            terms.append(sparse_matmul(laplacian, x0))
        for _ in range(2, self.K):
            terms.append(sparse_addmm(terms[-2], laplacian, terms[-1], alpha=2.0, beta=-1.0))  # 2 L~ X_{k-1} - X_{k-2}
        # y = sum_k X_k W_k + b, accumulated by addmm (no temporary per product).
        out = F.linear(terms[0].view(v * b, c), self.lins[0].weight, self.bias)
        for term, lin in zip(terms[1:], self.lins[1:]):
            out = torch.addmm(out, term.view(v * b, c), lin.weight.T)
        out = out.view(v, b, self.out_channels).transpose(0, 1)  # (B, V, C_out), a view: the next layer's reshape is free
        return out[0] if single else out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, K={self.K}, bias={self.bias is not None}"


def cheb_conv_dense(x: torch.Tensor, laplacian: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Reference Chebyshev convolution with the polynomial matrices formed explicitly (small V only).

    Computes P_0 = I, P_1 = L~, P_k = 2 L~ P_{k-1} - P_{k-2} as dense (V, V) matrices, then
    y = sum_k P_k x W_k + b. It shares no code with :class:`ChebConv`, which is the point: the tests
    hold the two together.

    Args:
        x: (B, V, C_in).
        laplacian: (V, V) dense or sparse L~.
        weight: (K, C_in, C_out), e.g. ``ChebConv.weight_stack()``.
        bias: (C_out,) or None.

    Returns:
        (B, V, C_out).
    """
    lap = laplacian.to_dense() if laplacian.layout != torch.strided else laplacian
    lap = lap.to(x.dtype)
    v = lap.shape[0]
    polys = [torch.eye(v, dtype=x.dtype, device=x.device)]
    if weight.shape[0] > 1:
        polys.append(lap)
    while len(polys) < weight.shape[0]:
        polys.append(2 * lap @ polys[-1] - polys[-2])
    out = sum(torch.einsum("uv,bvc,cd->bud", p, x, w) for p, w in zip(polys, weight))
    return out + bias if bias is not None else out
