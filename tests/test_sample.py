"""Image colours at projected vertices and their visibility (T_p)."""

import pytest
import torch

from facelib.render import FaceRenderer, sample_image, vertex_visibility


def test_sample_image_reads_pixel_centres_and_interpolates():
    image = torch.arange(12.0).view(1, 3, 4, 1)  # value = 4 * row + col
    points = torch.tensor([[[0.5, 0.5], [3.5, 2.5], [1.0, 0.5], [2.5, 1.5]]])
    values = sample_image(image, points)[0, :, 0]
    assert torch.allclose(values, torch.tensor([0.0, 11.0, 0.5, 6.0]), atol=1e-5)


def test_vertex_visibility_follows_the_depth_test():
    zbuf = torch.full((1, 4, 4), -1.0)
    zbuf[0, :, :2] = 5.0  # the left half is covered by a surface at depth 5
    screen = torch.tensor([[[1.0, 2.0, 5.01], [1.0, 2.0, 7.0], [3.5, 2.0, 5.0], [-3.0, 2.0, 5.0]]])
    visible = vertex_visibility(screen, zbuf)[0]
    # on the surface; hidden behind it; over background (nothing rendered there); outside the image
    assert visible.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_rendered_colours_come_back_at_visible_vertices(open_model):
    renderer = FaceRenderer.for_model(open_model, 160)
    shape = open_model.mean_shape[None]
    albedo = open_model.mean_tex[None] + 0.3 * torch.sin(8 * shape)  # a pattern to recover
    out = renderer.render(shape, albedo, torch.tensor([[0.0, 0.3, 0.0]]))
    samples = renderer.sample_colors(out.image, out)
    seen = samples.visibility[0].bool()
    # The MakeHuman mesh has eye sockets and a mouth cavity behind the surface: about 40% of the
    # model's vertices are hidden even in a frontal view.
    assert seen.float().mean() > 0.5
    err = (samples.colors[0] - out.colors[0]).abs().mean(-1)
    assert err[seen].median() < 0.02
    assert (samples.colors[0][~seen] == 0).all()


def test_turning_the_head_hides_the_far_cheek(open_model):
    renderer = FaceRenderer.for_model(open_model, 128)
    shape = open_model.mean_shape[None]
    far_cheek = shape[0, :, 0] < shape[0, :, 0].quantile(0.05)  # the model's right side (-x)
    frontal = renderer.render(shape, open_model.mean_tex[None])
    turned = renderer.render(shape, open_model.mean_tex[None], torch.tensor([[0.0, -1.2, 0.0]]))
    v_front = renderer.sample_colors(frontal.image, frontal).visibility[0]
    v_turned = renderer.sample_colors(turned.image, turned).visibility[0]
    assert v_front[far_cheek].mean() > 0.5
    assert v_turned[far_cheek].mean() < 0.1


def test_gradients_reach_the_image_and_the_shape(open_model):
    renderer = FaceRenderer.for_model(open_model, 64)
    shape = open_model.mean_shape[None].clone().requires_grad_(True)
    photo = torch.rand(1, 64, 64, 3, requires_grad=True)
    out = renderer.render(shape, open_model.mean_tex[None])
    renderer.sample_colors(photo, out).colors.sum().backward()
    assert photo.grad.abs().sum() > 0 and shape.grad.abs().sum() > 0


def test_turntable_shows_one_mesh_from_each_side(open_model):
    from facelib.render import FaceRenderer

    renderer = FaceRenderer.for_model(open_model, 64)
    views = renderer.turntable(open_model.mean_shape, open_model.mean_tex, yaws=(-0.6, 0.0, 0.6))
    assert views.shape == (3, 64, 64, 3) and 0 <= views.min() and views.max() <= 1
    painted = renderer.turntable(open_model.mean_shape, open_model.mean_tex, yaws=(0.0,), lit=False)
    front = renderer.paint(open_model.mean_shape[None], open_model.mean_tex[None].clamp(0, 1)).image.clamp(0, 1)
    assert torch.allclose(painted[0], front[0])
    # The mean face is nearly symmetric: turned left is close to turned right, mirrored.
    left, right = views[0], views[2].flip(1)
    covered = (left.sum(-1) > 0) & (right.sum(-1) > 0)
    assert covered.float().mean() > 0.2 and (left - right).abs()[covered].mean() < 0.05
    assert (views[0] - views[1]).abs().mean() > 0.01  # and different sides do look different
    with pytest.raises(ValueError, match="one mesh"):
        renderer.turntable(open_model.mean_shape[None], open_model.mean_tex[None])
