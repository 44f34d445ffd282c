"""The plain-torch rasterizer against PyTorch3D, and gradients through rendering."""

import pytest
import torch

from facelib.render import Camera, FaceRenderer, rasterize


def _agreement(screen, faces, size):
    a = rasterize(screen, faces, size, backend="torch")
    b = rasterize(screen, faces, size, backend="pytorch3d")
    same = (a.pix_to_face == b.pix_to_face).float().mean().item()
    both = (a.pix_to_face >= 0) & (a.pix_to_face == b.pix_to_face)
    bary_err = (a.bary - b.bary).abs()[both].max().item() if both.any() else 0.0
    return same, bary_err, a, b


@pytest.mark.parametrize("size", [(48, 64), (64, 64), (37, 23)])
def test_backends_agree_on_random_triangles(size):
    torch.manual_seed(0)
    h, w = size
    screen = torch.rand(2, 200, 3) * torch.tensor([w * 1.2, h * 1.2, 2.0]) - torch.tensor([w * 0.1, h * 0.1, -4.0])
    faces = torch.randint(0, 200, (150, 3))
    same, bary_err, _, _ = _agreement(screen, faces, size)
    assert same > 0.999 and bary_err < 1e-4


@pytest.mark.parametrize("yaw", [0.0, 0.7])
def test_backends_agree_on_the_face(open_model, yaw):
    camera = Camera.deng(96)
    posed = camera.transform(open_model.mean_shape[None], torch.tensor([[0.1, yaw, 0.0]]), torch.zeros(1, 3))
    same, bary_err, a, b = _agreement(camera.project(posed), open_model.triangles, camera.image_size)
    assert same > 0.999 and bary_err < 1e-4
    assert (a.zbuf - b.zbuf).abs()[a.pix_to_face >= 0].max() < 1e-4


def test_chunking_does_not_change_the_result():
    torch.manual_seed(1)
    screen = torch.rand(1, 60, 3) * torch.tensor([40.0, 40.0, 1.0]) + torch.tensor([0, 0, 3.0])
    faces = torch.randint(0, 60, (80, 3))
    a = rasterize(screen, faces, 40)
    b = rasterize(screen, faces, 40, max_candidates=500)
    assert torch.equal(a.pix_to_face, b.pix_to_face)


def test_a_huge_triangle_fills_the_image():
    screen = torch.tensor([[[-1000.0, -1000.0, 5.0], [3000.0, -1000.0, 5.0], [-1000.0, 3000.0, 5.0]]])
    frags = rasterize(screen, torch.tensor([[0, 1, 2]]), 32, max_candidates=100)
    assert bool((frags.pix_to_face == 0).all())


def test_gradients_reach_shape_pose_albedo_and_light(open_model):
    renderer = FaceRenderer.for_model(open_model, 64)
    shape = open_model.mean_shape[None].clone().requires_grad_(True)
    albedo = open_model.mean_tex[None].clone().requires_grad_(True)
    angles = torch.tensor([[0.0, 0.2, 0.0]], requires_grad=True)
    gamma = torch.zeros(1, 27, requires_grad=True)
    out = renderer.render(shape, albedo, angles, gamma=gamma)
    (out.image * torch.rand_like(out.image)).sum().backward()
    for name, t in [("shape", shape), ("albedo", albedo), ("angles", angles), ("gamma", gamma)]:
        assert t.grad is not None and t.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert out.landmarks.shape == (1, 68, 2)


def test_interpolation_gradcheck_in_double():
    screen = torch.tensor([[[2.0, 3.0, 4.0], [14.0, 4.0, 5.0], [6.0, 13.0, 6.0]]], dtype=torch.float64, requires_grad=True)
    colors = torch.rand(1, 3, 2, dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2]])

    def render(s, c):
        return rasterize(s, faces, 16).interpolate(c)

    assert torch.autograd.gradcheck(render, (screen, colors), eps=1e-6, atol=1e-5)


def test_bench_mesh_has_bfm_scale_and_the_bench_runs(capsys):
    from facelib.bench import bench_render, grid_mesh

    verts, faces = grid_mesh()
    assert (verts.shape[0], faces.shape[0]) == (35721, 70688)
    rows = bench_render(batches=(1,), size=32, device="cpu", repeats=1)
    assert rows[0]["torch_ms"] > 0 and rows[0]["pytorch3d/torch"] > 0


@pytest.mark.parametrize("size,yaw,level", [(64, -0.5, 0), (112, 0.3, 0), ((80, 120), 0.9, 1)])
def test_backends_render_the_same_images(open_model, size, yaw, level):
    model = open_model if level == 0 else open_model.subdivided(level)
    gamma = torch.zeros(1, 27)
    gamma[:, [1, 10, 19]] = -0.3
    images = {}
    for backend in ("torch", "pytorch3d"):
        renderer = FaceRenderer.for_model(model, size, backend=backend)
        images[backend] = renderer.render(model.mean_shape[None], model.mean_tex[None], torch.tensor([[0.1, yaw, 0.0]]), gamma=gamma)
    a, b = images["torch"], images["pytorch3d"]
    assert (a.pix_to_face == b.pix_to_face).float().mean() > 0.999
    assert (a.image - b.image).abs().mean() < 1e-3


@pytest.mark.parametrize("backend", ["torch", "pytorch3d"])
def test_cull_backfaces_keeps_counter_clockwise_model_triangles_on_both_backends(backend):
    """A triangle counter-clockwise seen from the camera (+z, in model space) is front-facing; its reverse is culled."""
    camera = Camera.deng(32)
    front = torch.tensor([[[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.0, 0.3, 0.0]]])  # counter-clockwise seen from +z
    screen = camera.project(front)
    ccw, cw = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])
    for faces in (ccw, cw):
        assert (rasterize(screen, faces, 32, backend=backend).pix_to_face >= 0).any(), "without culling both windings draw"
    assert (rasterize(screen, ccw, 32, backend=backend, cull_backfaces=True).pix_to_face >= 0).any()
    assert not (rasterize(screen, cw, 32, backend=backend, cull_backfaces=True).pix_to_face >= 0).any()


def test_euler_rotation_is_rz_ry_rx_with_yaw_about_y():
    """Deng et al.'s convention: R = Rz(roll) Ry(yaw) Rx(pitch), column vectors; a positive yaw turns +z towards +x."""
    import math

    from facelib.render import euler_rotation

    yaw = euler_rotation(torch.tensor([[0.0, math.pi / 2, 0.0]]))[0]
    assert torch.allclose(yaw @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    pitch = euler_rotation(torch.tensor([[math.pi / 2, 0.0, 0.0]]))[0]
    assert torch.allclose(pitch @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    roll = euler_rotation(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    assert torch.allclose(roll @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    a, b, c = 0.3, -0.7, 0.2
    composed = euler_rotation(torch.tensor([[0.0, 0.0, c]]))[0] @ euler_rotation(torch.tensor([[0.0, b, 0.0]]))[0] \
        @ euler_rotation(torch.tensor([[a, 0.0, 0.0]]))[0]
    assert torch.allclose(euler_rotation(torch.tensor([[a, b, c]]))[0], composed, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "pytorch3d"])
def test_points_at_or_behind_the_camera_are_dropped_without_nans(backend):
    """The near plane: a vertex at depth 0 or behind the camera drops its triangles, and no NaN reaches the gradients."""
    camera = Camera.deng(32)
    points = torch.tensor([[[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 10.0], [0.5, 0.5, 12.0]]],
                          requires_grad=True)  # vertex 3 sits in the camera's centre, vertex 4 behind it
    screen = camera.project(points)
    assert torch.isfinite(screen).all() and screen[0, 3, 2] <= 0 and screen[0, 4, 2] < 0
    frags = rasterize(screen, torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4]]), 32, backend=backend)
    assert set(torch.unique(frags.pix_to_face).tolist()) == {-1, 0}
    frags.interpolate(points).sum().backward()
    assert torch.isfinite(points.grad).all() and points.grad[0, :3].abs().sum() > 0
