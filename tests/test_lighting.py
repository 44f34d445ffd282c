"""SH lighting: the ambient term, shading, and its inverse."""

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
