"""SH lighting: the ambient term, shading, its inverse, and whose constants."""

import pytest
import torch

from facelib.render.lighting import AMBIENT_IRRADIANCE, sh_shading, shade, unshade


def _normals(n: int = 200) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(1, n, 3, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_zero_gamma_is_the_uniform_ambient_light():
    irradiance = sh_shading(_normals(), torch.zeros(1, 27))
    assert torch.allclose(irradiance, torch.full_like(irradiance, AMBIENT_IRRADIANCE))


def test_unshade_inverts_shade_where_lit():
    normals = _normals()
    gamma = torch.zeros(1, 27)
    gamma.view(1, 3, 9)[:, :, 2] = 0.3  # light from the camera side (+z): the back is darker
    albedo = torch.rand(1, 200, 3, generator=torch.Generator().manual_seed(1)) * 0.9
    recovered, lit = unshade(shade(albedo, normals, gamma), normals, gamma)
    keep = lit.bool()
    assert keep.float().mean() > 0.5
    assert torch.allclose(recovered[keep], albedo[keep], atol=1e-5)


def test_unshade_leaves_unlit_points_at_zero():
    normals = torch.tensor([[[0.0, 0.0, -1.0]]])
    gamma = torch.zeros(1, 27)
    gamma.view(1, 3, 9)[:, :, 0] = -0.8  # cancels the ambient offset: no light at all
    albedo, lit = unshade(torch.full((1, 1, 3), 0.5), normals, gamma)
    assert lit.item() == 0 and albedo.abs().max() == 0


def test_unshade_keeps_the_hue_of_a_reading_brighter_than_white():
    """A reading above what the light allows is scaled down by its brightest channel, not clipped per channel."""
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    gamma = torch.zeros(1, 27)
    irradiance = sh_shading(normals, gamma)[0, 0, 0].item()
    warm = torch.tensor([[[1.3, 1.1, 0.65], [0.5, 0.4, 0.3]]]) * irradiance  # a too-bright skin reading, and a normal one
    albedo, lit = unshade(warm, normals, gamma)
    assert lit.tolist() == [[1.0, 1.0]]
    assert torch.allclose(albedo[0, 0], torch.tensor([1.0, 1.1 / 1.3, 0.65 / 1.3]), atol=1e-6)  # hue kept, at most 1
    assert torch.allclose(albedo[0, 1], torch.tensor([0.5, 0.4, 0.3]), atol=1e-6)  # in range: untouched


def test_sh_basis_uses_deng_et_als_constants():
    """Deep3DFaceRecon's compute_color, written out: a_1, a_2 are sqrt(3) and sqrt(8) times Ramamoorthi-Hanrahan's."""
    import math

    from facelib.render.lighting import _A, sh_basis

    assert _A[1] == pytest.approx(math.sqrt(3) * 2 * math.pi / 3) and _A[2] == pytest.approx(math.sqrt(8) * math.pi / 4)
    n = torch.nn.functional.normalize(torch.tensor([[0.3, -0.5, 0.8], [0.0, 0.0, 1.0], [-0.6, 0.6, 0.52]], dtype=torch.float64), dim=-1)
    x, y, z = n.unbind(-1)
    a0, a1, a2 = math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)
    c0, c1, c2 = 1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi), 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi)
    deng = torch.stack([torch.full_like(x, a0 * c0), -a1 * c1 * y, a1 * c1 * z, -a1 * c1 * x, a2 * c2 * x * y, -a2 * c2 * y * z,
                        0.5 / math.sqrt(3.0) * a2 * c2 * (3 * z ** 2 - 1), -a2 * c2 * x * z, 0.5 * a2 * c2 * (x ** 2 - y ** 2)], -1)
    assert torch.allclose(sh_basis(n), deng, atol=1e-12)
    assert float(sh_basis(n)[0, 0]) == pytest.approx(math.sqrt(math.pi) / 2)  # a_0 c_0 = pi / sqrt(4 pi)
