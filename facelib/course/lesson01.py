"""Exercises of lesson 01 (3DMM and PCA), with facelib's reference implementations."""

from __future__ import annotations

import torch

from facelib.course.check import Exercise, expect, expect_close, expect_tensor


def pca(data: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal component analysis of row samples, with the SVD.

    With the centred data X - mean = U S V^T (N samples, D dimensions), the principal directions
    are the rows of V^T and the variance along direction i is S_i^2 / (N - 1).

    Args:
        data: (N, D) samples.
        k: number of components to keep.

    Returns:
        mean (D,), components (k, D) with orthonormal rows in decreasing order of variance, and
        variances (k,).
    """
    mean = data.mean(0)
    _, s, vt = torch.linalg.svd(data - mean, full_matrices=False)
    return mean, vt[:k], s[:k] ** 2 / (data.shape[0] - 1)


def _test_pca(answer) -> None:
    g = torch.Generator().manual_seed(3)
    # Data with a known structure: 3 strong directions in 12 dimensions, plus a little noise.
    basis = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))[0][:, :3].T
    data = (torch.randn(200, 3, generator=g, dtype=torch.float64) * torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)) @ basis
    data = data + 0.01 * torch.randn(200, 12, generator=g, dtype=torch.float64) + 7.0
    out = answer(data, 3)
    expect(isinstance(out, tuple) and len(out) == 3, "return three things: mean, components, variances")
    mean, comps, var = out
    ref_mean, ref_comps, ref_var = pca(data, 3)
    expect_close(expect_tensor(mean, "mean", (12,)), ref_mean, "mean", atol=1e-6)
    expect_tensor(comps, "components", (3, 12))
    expect_tensor(var, "variances", (3,))
    gram = comps.double() @ comps.double().T
    expect(torch.allclose(gram, torch.eye(3, dtype=torch.float64), atol=1e-6), "the components should be orthonormal rows (unit length, mutually orthogonal); did you take V^T's rows, or U's columns?")
    expect(bool((var[1:] <= var[:-1]).all()), "the variances should come in decreasing order")
    expect_close(var.double(), ref_var, "variances (S^2 / (N - 1))", atol=1e-6, rtol=1e-6)
    # Components are defined up to sign: compare the absolute cosines.
    cos = (comps.double() * ref_comps).sum(1).abs()
    expect(bool((cos > 1 - 1e-6).all()), "the components do not span the main directions of the data: centre the data before the SVD")


pca_exercise = Exercise(
    "Exercise 1.1: PCA with the SVD", pca, _test_pca,
    "Centre the data (subtract the mean of each column), call torch.linalg.svd(X, full_matrices=False), keep the first k rows of V^T, and turn singular values into variances.",
)


def morphable_shape(mean_shape: torch.Tensor, id_base: torch.Tensor, exp_base: torch.Tensor, c_id: torch.Tensor, c_exp: torch.Tensor) -> torch.Tensor:
    """S = S_mean + I_base c_id + E_base c_exp for a batch.

    Args:
        mean_shape: (V, 3). id_base: (3V, k_id). exp_base: (3V, k_exp), rows ordered x0, y0, z0, x1, ...
        c_id: (B, k_id). c_exp: (B, k_exp).

    Returns:
        (B, V, 3).
    """
    offsets = c_id @ id_base.T + c_exp @ exp_base.T
    return mean_shape + offsets.view(c_id.shape[0], -1, 3)


def _test_morphable_shape(answer) -> None:
    g = torch.Generator().manual_seed(4)
    v, kid, kexp, b = 7, 5, 4, 3
    args = (torch.randn(v, 3, generator=g), torch.randn(3 * v, kid, generator=g), torch.randn(3 * v, kexp, generator=g),
            torch.randn(b, kid, generator=g), torch.randn(b, kexp, generator=g))
    out = expect_tensor(answer(*args), "the shapes", (b, v, 3))
    zero = answer(args[0], args[1], args[2], torch.zeros(b, kid), torch.zeros(b, kexp))
    expect_close(zero, args[0].expand(b, v, 3), "the shape with all coefficients zero (it should be the mean)")
    wrong_order = args[0] + (args[3] @ args[1].T + args[4] @ args[2].T).view(b, 3, v).transpose(1, 2)
    expect(not torch.allclose(out, wrong_order, atol=1e-5), "the rows of the bases are ordered x0, y0, z0, x1, ...: reshape to (B, V, 3), not (B, 3, V)")
    expect_close(out, morphable_shape(*args), "the shapes")


morphable_shape_exercise = Exercise(
    "Exercise 1.2: the morphable model equation", morphable_shape, _test_morphable_shape,
    "Multiply the coefficients by the transposed bases ((B, k) @ (k, 3V)), add the two offsets, view them as (B, V, 3) and add the mean.",
)


def fit_coefficients(shape: torch.Tensor, mean_shape: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """The coefficients c that best explain a shape: argmin_c ||mean + base c - shape||^2.

    Args:
        shape: (B, V, 3). mean_shape: (V, 3). base: (3V, k).

    Returns:
        (B, k), the least-squares solution (the normal equations, or torch.linalg.lstsq).
    """
    residual = (shape - mean_shape).reshape(shape.shape[0], -1)  # (B, 3V)
    return torch.linalg.lstsq(base, residual.T).solution.T


def _test_fit_coefficients(answer) -> None:
    g = torch.Generator().manual_seed(5)
    v, k, b = 9, 4, 2
    mean, base = torch.randn(v, 3, generator=g, dtype=torch.float64), torch.randn(3 * v, k, generator=g, dtype=torch.float64)
    truth = torch.randn(b, k, generator=g, dtype=torch.float64)
    shape = mean + (truth @ base.T).view(b, v, 3)
    out = expect_tensor(answer(shape, mean, base), "the coefficients", (b, k))
    expect_close(out.double(), truth, "the coefficients of shapes that the model explains exactly", atol=1e-6)
    noisy = shape + 0.1 * torch.randn(b, v, 3, generator=g, dtype=torch.float64)
    expect_close(answer(noisy, mean, base).double(), fit_coefficients(noisy, mean, base), "the least-squares coefficients of noisy shapes", atol=1e-6)


fit_coefficients_exercise = Exercise(
    "Exercise 1.3: fit coefficients to a shape", fit_coefficients, _test_fit_coefficients,
    "Subtract the mean, flatten each shape to a 3V vector, and solve base @ c = residual in the least-squares sense for every shape at once.",
)
