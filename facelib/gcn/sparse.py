"""Sparse-times-dense products for graph layers, with a cheap backward pass.

Graph layers multiply per-vertex features by fixed sparse matrices: the Chebyshev Laplacian L~ and
the hierarchy's down/up-sampling matrices D and U. Features (B, V, C) are laid out as one (V, B C)
matrix so that a single sparse product serves the whole batch.

The gradient of Y = M X with respect to X is M^T dY. torch's own backward for a CSR ``M`` builds the
transpose at every call (about three times the cost of the forward on a CPU); here the transpose is
made once and passed in (for the symmetric L~ it is L~ itself). The backward is itself written with
the same function, so second derivatives work too.
"""

from __future__ import annotations

import warnings

import torch


def to_csr(matrix: torch.Tensor) -> torch.Tensor:
    """A sparse COO, CSR or dense 2-D tensor as sparse CSR (the fastest layout for M @ X)."""
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {tuple(matrix.shape)}")
    if matrix.layout == torch.sparse_csr:
        return matrix
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state": we rely only on CSR @ dense
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return (matrix.coalesce() if matrix.is_sparse else matrix).to_sparse_csr()


def transpose_csr(matrix: torch.Tensor) -> torch.Tensor:
    """M^T as sparse CSR, for :func:`sparse_matmul`'s backward."""
    coo = matrix.to_sparse_coo() if matrix.layout == torch.sparse_csr else matrix
    return to_csr(coo.transpose(0, 1).coalesce() if coo.is_sparse else coo.T)


class _SparseMatmul(torch.autograd.Function):
    """Y = M X for a constant M, with dX = M^T dY from a precomputed M^T."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, matrix_t: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(matrix, matrix_t)
        return matrix @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor | None]:
        matrix, matrix_t = ctx.saved_tensors
        if not ctx.needs_input_grad[2]:
            return None, None, None
        return None, None, _SparseMatmul.apply(matrix_t, matrix, grad)


def sparse_matmul(matrix: torch.Tensor, dense: torch.Tensor, matrix_t: torch.Tensor | None = None) -> torch.Tensor:
    """M @ X for a constant sparse (or dense) M; gradients flow to X only.

    Args:
        matrix: (N, M) sparse CSR/COO or dense, no gradient.
        dense: (M, K).
        matrix_t: M^T in any layout; None when M is symmetric (the Laplacian), so M^T = M.

    Returns:
        (N, K).
    """
    if dense.ndim != 2 or dense.shape[0] != matrix.shape[1]:
        raise ValueError(f"cannot multiply a {tuple(matrix.shape)} matrix by features of shape {tuple(dense.shape)}")
    if matrix.dtype != dense.dtype:
        matrix = matrix.to(dense.dtype)
        matrix_t = matrix_t.to(dense.dtype) if matrix_t is not None else None
    matrix_t = matrix if matrix_t is None else matrix_t
    if not (torch.is_grad_enabled() and dense.requires_grad):
        return matrix @ dense
    return _SparseMatmul.apply(matrix, matrix_t, dense)


def vertexwise(matrix: torch.Tensor, x: torch.Tensor, matrix_t: torch.Tensor | None = None) -> torch.Tensor:
    """Applies an (N, V) matrix to every channel of batched per-vertex features.

    Args:
        matrix: (N, V), as in :func:`sparse_matmul`.
        x: (B, V, C) features.
        matrix_t: (V, N) transpose, or None for a symmetric matrix.

    Returns:
        (B, N, C): out[b, :, c] = M x[b, :, c].
    """
    if x.ndim != 3 or x.shape[1] != matrix.shape[1]:
        raise ValueError(f"expected features (B, V={matrix.shape[1]}, C), got {tuple(x.shape)}")
    b, v, c = x.shape
    flat = x.transpose(0, 1).reshape(v, b * c)  # (V, B C); free when x came out of a graph layer
    return sparse_matmul(matrix, flat, matrix_t).view(-1, b, c).transpose(0, 1)
