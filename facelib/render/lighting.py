"""Spherical-harmonics lighting (9 bands x RGB) as in Deng et al. (2019).

For a unit normal n = (x, y, z) the irradiance of colour channel c is

    E_c(n) = sum_k gamma[c, k] * Y_k(n),

with the first nine real SH basis functions Y_k = a_l c_lm P_lm(n) already convolved with a
Lambertian kernel, and the shaded colour is albedo * E. Deng et al. add 0.8 to the constant band
of every channel so that gamma = 0 means a uniform, moderately bright light.

**Whose constants.** These are Deng et al.'s (Deep3DFaceRecon, ``compute_color``), which the
pretrained regressors and the official code of Lin et al. use:

    a_0 = pi,  a_1 = 2 pi / sqrt(3),  a_2 = 2 pi / sqrt(8);
    c_0 = 1 / sqrt(4 pi),  c_1 = sqrt(3) / sqrt(4 pi),  c_2 = 3 sqrt(5) / sqrt(12 pi).

Ramamoorthi and Hanrahan's (2001) physical Lambertian kernel is A_0 = pi, A_1 = 2 pi / 3,
A_2 = pi / 4: Deng's a_1 is sqrt(3) A_1 and a_2 is sqrt(8) A_2. The difference is a fixed
per-band scale, so it is absorbed by the fitted gamma, but it means a gamma is in Deng's units:
bands 1-3 read physically are sqrt(3) times larger, bands 4-8 sqrt(8) times. Facelib keeps Deng's
so that coefficients move between facelib, BFM-based regressors and the official code unchanged
(``tests/test_lighting.py`` pins them).
"""

from __future__ import annotations

import math

import torch

AMBIENT_OFFSET = 0.8
SH_BANDS = 9

_A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
_C = (1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi), 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi))


AMBIENT_IRRADIANCE = AMBIENT_OFFSET * _A[0] * _C[0]
"""The irradiance of gamma = 0 (the ambient offset alone), the same for every normal: about 0.709."""


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The nine Lambertian-convolved SH basis values at unit normals.  (..., 3) -> (..., 9)."""
    x, y, z = normals.unbind(-1)
    a0c0, a1c1, a2c2 = _A[0] * _C[0], _A[1] * _C[1], _A[2] * _C[2]
    return torch.stack(
        [
            torch.full_like(x, a0c0),
            -a1c1 * y,
            a1c1 * z,
            -a1c1 * x,
            a2c2 * x * y,
            -a2c2 * y * z,
            0.5 * a2c2 / math.sqrt(3.0) * (3 * z * z - 1),
            -a2c2 * x * z,
            0.5 * a2c2 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_shading(normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Irradiance per point and channel.

    Args:
        normals: (B, N, 3) unit normals in camera-aligned model space.
        gamma: (B, 27) SH coefficients, laid out as 3 channels x 9 bands (the ambient offset is added here).

    Returns:
        (B, N, 3) irradiance.
    """
    if gamma.ndim != 2 or gamma.shape[-1] != 3 * SH_BANDS:
        raise ValueError(f"gamma must be (B, 27), got {tuple(gamma.shape)}")
    coeffs = gamma.view(-1, 3, SH_BANDS)
    offset = torch.zeros_like(coeffs)
    offset[:, :, 0] = AMBIENT_OFFSET
    basis = sh_basis(normals)  # (B, N, 9)
    return basis @ (coeffs + offset).transpose(1, 2)


def shade(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Lambertian SH shading: albedo * irradiance.  (B, N, 3) albedo -> (B, N, 3) colour."""
    return albedo * sh_shading(normals, gamma)


def unshade(colors: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor, min_irradiance: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`shade`: the albedo that would show ``colors`` under this light.

        T_v = C_v / E(n_v)        where E(n_v) >= min_irradiance, per channel

    It is only as good as the light and the normals: an error in either lands in the albedo.
    Where the irradiance is (nearly) zero, nothing can be recovered and the result is 0.

    A colour brighter than the light allows (a highlight, or skin the fitted shading makes too
    dark) gives an "albedo" above 1. It is brought back into [0, 1] by dividing the vertex's three
    channels by the largest, T_v / max(1, max_c T_vc), which keeps its hue: clipping each channel
    at 1 would not: a warm skin reading of (1.3, 1.1, 0.95) would become a washed-out (1, 1, 0.95)
    instead of (1, 0.85, 0.73), red lost against the skin around it (measured as a teal streak along
    the astronaut's smile line).

    Args:
        colors: (B, N, 3) observed colours (e.g. the photo sampled at projected vertices).
        normals: (B, N, 3) unit normals.
        gamma: (B, 27) SH coefficients.
        min_irradiance: irradiance below which a channel counts as unlit.

    Returns:
        (B, N, 3) albedo in [0, 1], and (B, N) float: 1 where every channel was lit enough.
    """
    if colors.shape != normals.shape or colors.shape[-1] != 3:
        raise ValueError(f"colors and normals must both be (B, N, 3), got {tuple(colors.shape)} and {tuple(normals.shape)}")
    irradiance = sh_shading(normals, gamma)
    lit = irradiance >= min_irradiance
    albedo = torch.where(lit, colors / irradiance.clamp(min=min_irradiance), torch.zeros_like(colors)).clamp(min=0)
    albedo = albedo / albedo.amax(-1, keepdim=True).clamp(min=1.0)
    return albedo, lit.all(-1).to(colors.dtype)
