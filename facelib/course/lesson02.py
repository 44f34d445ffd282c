"""Exercises of lesson 02 (mesh graphs and GCNs), with facelib's reference implementations."""

from __future__ import annotations

import torch

from facelib.course.check import Exercise, expect, expect_close, expect_tensor
from facelib.gcn import cheb_conv_dense
from facelib.gcn.blocks import ChebResBlock
from facelib.mesh.graph import chebyshev_laplacian
from facelib.mesh.graph import normalized_laplacian as facelib_laplacian


def normalized_laplacian(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """The normalised graph Laplacian of a triangle mesh, as a dense matrix.

    A_ij = 1 when vertices i and j share a triangle edge (symmetric, zero diagonal), d_i = sum_j A_ij,

        L = I - D^-1/2 A D^-1/2.

    Args:
        faces: (F, 3) long triangles.
        num_vertices: V.

    Returns:
        (V, V) float64.
    """
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = torch.zeros(num_vertices, num_vertices, dtype=torch.float64)
    adjacency[edges[:, 0], edges[:, 1]] = 1.0
    adjacency[edges[:, 1], edges[:, 0]] = 1.0
    degree = adjacency.sum(1)
    inv_sqrt = torch.where(degree > 0, degree.clamp(min=1).rsqrt(), torch.zeros_like(degree))
    return torch.eye(num_vertices, dtype=torch.float64) - inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def _small_mesh() -> tuple[torch.Tensor, int]:
    # A 4 x 4 grid of vertices, two triangles per square; one edge shared by two triangles.
    idx = torch.arange(16).view(4, 4)
    a, b, c, d = idx[:-1, :-1].reshape(-1), idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1), idx[:-1, 1:].reshape(-1)
    return torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)]), 16


def _test_laplacian(answer) -> None:
    faces, v = _small_mesh()
    out = answer(faces, v)
    out = out.to_dense() if getattr(out, "layout", torch.strided) != torch.strided else out
    out = expect_tensor(out, "the Laplacian", (v, v)).double()
    expect(torch.allclose(out, out.T, atol=1e-8), "L should be symmetric: put every edge in both directions (i, j) and (j, i), "
                                                  "and scale A by D^-1/2 on both sides (not D^-1 on one side)")
    diagonal = out.diagonal()
    expect(torch.allclose(diagonal, torch.ones_like(diagonal), atol=1e-6), "the diagonal of L should be 1 (no self-loops in A, and the identity added once)")
    expect(bool((out - torch.diag(diagonal) <= 1e-12).all()), "off-diagonal entries should be -1/sqrt(d_i d_j) on edges and 0 elsewhere")
    reference = facelib_laplacian(faces, v).to_dense().double()
    edges = (reference != 0) & ~torch.eye(v, dtype=torch.bool)
    expect(bool(((out != 0) & ~torch.eye(v, dtype=torch.bool)).eq(edges).all()),
           "the non-zero off-diagonal entries should be exactly the mesh's edges (each triangle has three)")
    expect(bool((out - reference).abs()[edges].max() < 1e-6),
           "on an edge (i, j), L_ij should be -1/sqrt(d_i d_j) with d the number of neighbours: an edge shared by two "
           "triangles still gives A_ij = 1 (set the entries, do not add them up)")
    expect_close(out, reference, "the Laplacian", atol=1e-6)


laplacian_exercise = Exercise(
    "Exercise 2.1: the normalised Laplacian", normalized_laplacian, _test_laplacian,
    "Every triangle (a, b, c) has the edges a-b, b-c and c-a; A is symmetric with 0/1 entries; the degrees are its row sums.",
)


def chebyshev_basis(x: torch.Tensor, laplacian: torch.Tensor, K: int) -> torch.Tensor:
    """The Chebyshev terms T_0(L~) x, ..., T_{K-1}(L~) x, by the recurrence (no matrix powers):

        X_0 = x,   X_1 = L~ x,   X_k = 2 L~ X_{k-1} - X_{k-2}.

    Args:
        x: (V, C) a signal on the vertices.
        laplacian: (V, V) the rescaled Laplacian L~ (dense or sparse).
        K: number of terms, K >= 1.

    Returns:
        (K, V, C).
    """
    terms = [x]
    if K > 1:
        terms.append(laplacian @ x)
    for _ in range(2, K):
        terms.append(2 * (laplacian @ terms[-1]) - terms[-2])
    return torch.stack(terms)


def _test_chebyshev_basis(answer) -> None:
    faces, v = _small_mesh()
    lap = chebyshev_laplacian(faces, v).to_dense().double()
    g = torch.Generator().manual_seed(11)
    x = torch.randn(v, 2, generator=g, dtype=torch.float64)
    out = expect_tensor(answer(x, lap, 5), "the Chebyshev terms", (5, v, 2)).double()
    expect_close(out[0], x, "T_0(L~) x (it is x itself)")
    expect_close(out[1], lap @ x, "T_1(L~) x (it is L~ x)")
    expect_close(out[2], 2 * lap @ lap @ x - x, "T_2(L~) x = (2 L~^2 - I) x: the recurrence is X_k = 2 L~ X_(k-1) - X_(k-2)")
    expect_close(out, chebyshev_basis(x, lap, 5), "the Chebyshev terms")
    expect_tensor(answer(x, lap, 1), "the Chebyshev terms with K = 1", (1, v, 2))
    sparse = answer(x, lap.to_sparse(), 5)
    expect_close(sparse.to_dense().double() if sparse.layout != torch.strided else sparse.double(), out,
                 "the Chebyshev terms with a sparse L~ (use matrix products L~ @ X only, no matrix powers or dense identity)")


chebyshev_basis_exercise = Exercise(
    "Exercise 2.2: the Chebyshev recurrence", chebyshev_basis, _test_chebyshev_basis,
    "Keep the last two terms and apply the recurrence until there are K; use only products L~ @ X. Mind K = 1.",
)


def cheb_conv(x: torch.Tensor, laplacian: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A Chebyshev graph convolution: y = sum_k T_k(L~) x W_k + b.

    Args:
        x: (V, C_in). laplacian: (V, V) L~. weight: (K, C_in, C_out). bias: (C_out,).

    Returns:
        (V, C_out).
    """
    terms = chebyshev_basis(x, laplacian, weight.shape[0])  # (K, V, C_in)
    return torch.einsum("kvc,kcd->vd", terms, weight) + bias


def _test_cheb_conv(answer) -> None:
    faces, v = _small_mesh()
    lap = chebyshev_laplacian(faces, v).to_dense().double()
    g = torch.Generator().manual_seed(12)
    x = torch.randn(v, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    bias = torch.randn(5, generator=g, dtype=torch.float64)
    out = expect_tensor(answer(x, lap, weight, bias), "the output", (v, 5)).double()
    only_first = torch.zeros_like(weight)
    only_first[0] = weight[0]
    expect_close(answer(x, lap, only_first, bias).double(), x @ weight[0] + bias,
                 "the output when only W_0 is non-zero (it should be x W_0 + b: T_0 is the identity)")
    expect_close(out, cheb_conv_dense(x[None], lap, weight, bias)[0], "the output")
    expect_close(answer(x, lap.to_sparse(), weight, bias).double(), out, "the output with a sparse L~")


cheb_conv_exercise = Exercise(
    "Exercise 2.3: a Chebyshev convolution", cheb_conv, _test_cheb_conv,
    "Compute the K terms with your chebyshev_basis (K = weight.shape[0]), multiply term k by W_k, sum over k, add the bias.",
)


def res_block(x: torch.Tensor, laplacian: torch.Tensor, conv1: tuple[torch.Tensor, torch.Tensor],
              conv2: tuple[torch.Tensor, torch.Tensor], shortcut: torch.Tensor | None) -> torch.Tensor:
    """The residual block of the Refiner and Decoder (facelib's :class:`~facelib.gcn.blocks.ChebResBlock`):

        h = ELU(conv1(x)),   y = ELU(conv2(h) + s(x)),   s(x) = x (C_in = C_out) or x S (a linear map, no bias).

    Args:
        x: (V, C_in). laplacian: (V, V) L~.
        conv1: (weight (K, C_in, C_out), bias (C_out,)). conv2: (weight (K, C_out, C_out), bias (C_out,)).
        shortcut: (C_in, C_out) S, or None when C_in = C_out.

    Returns:
        (V, C_out).
    """
    h = torch.nn.functional.elu(cheb_conv(x, laplacian, *conv1))
    skip = x if shortcut is None else x @ shortcut
    return torch.nn.functional.elu(cheb_conv(h, laplacian, *conv2) + skip)


def block_weights(block) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], torch.Tensor | None]:
    """A ChebResBlock's parameters in exercise 2.4's layout: ((W1, b1), (W2, b2), S or None)."""
    def conv(c):
        return c.weight_stack().detach(), c.bias.detach()
    shortcut = None if block.shortcut is None else block.shortcut.weight_stack()[0].detach()
    return conv(block.conv1), conv(block.conv2), shortcut


def _test_res_block(answer) -> None:
    faces, v = _small_mesh()
    lap = chebyshev_laplacian(faces, v).to_dense().double()
    torch.manual_seed(21)
    for c_in, c_out in ((3, 5), (4, 4)):
        block = ChebResBlock(c_in, c_out, K=3).double()
        for p in block.parameters():  # non-zero biases, so that a missing bias shows
            torch.nn.init.normal_(p, 0.0, 0.5)
        x = torch.randn(v, c_in, dtype=torch.float64)
        conv1, conv2, shortcut = block_weights(block)
        what = f"the block's output with C_in = {c_in}, C_out = {c_out}"
        out = expect_tensor(answer(x, lap, conv1, conv2, shortcut), what, (v, c_out)).double()
        with torch.no_grad():
            expected = block(x[None], lap)[0]
        if not torch.allclose(out, expected, atol=1e-6):
            plain = torch.nn.functional.elu(cheb_conv(torch.nn.functional.elu(cheb_conv(x, lap, *conv1)), lap, *conv2))
            expect(not torch.allclose(out, plain, atol=1e-6), f"{what}: the shortcut is missing: add s(x) before the last ELU")
            inside = torch.nn.functional.elu(cheb_conv(torch.nn.functional.elu(cheb_conv(x, lap, *conv1)), lap, *conv2)) \
                + (x if shortcut is None else x @ shortcut)
            expect(not torch.allclose(out, inside, atol=1e-6), f"{what}: the shortcut is added after the last ELU; add it before")
            expect_close(out, expected, what, atol=1e-6)


res_block_exercise = Exercise(
    "Exercise 2.4: the Refiner's residual block", res_block, _test_res_block,
    "h = elu(cheb_conv(x, L, *conv1)); the skip is x itself or x @ shortcut; y = elu(cheb_conv(h, L, *conv2) + skip).",
)
