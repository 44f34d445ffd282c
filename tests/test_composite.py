"""A rendering over the photo: the hard composite of the losses and the feathered, skin-aware paste of overlays."""

import pytest
import torch

from facelib.render import composite, paste_alpha
from facelib.render.renderer import Rendering


def _rendering(image, mask):
    b, h, w, _ = image.shape
    empty = torch.zeros(b, h, w)
    return Rendering(image, mask, empty, empty.long(), None, None, None, None, None, None)


def test_composite_is_the_rendering_where_it_covers_and_the_photo_elsewhere():
    image = torch.full((1, 4, 4, 3), 2.0, requires_grad=True)  # out of range: clamped
    mask = torch.zeros(1, 4, 4)
    mask[:, 1:3, 1:3] = 1
    photo = torch.rand(1, 4, 4, 3)
    out = composite(_rendering(image, mask), photo)
    assert torch.equal(out[0, 1, 1], torch.ones(3)) and torch.equal(out[0, 0, 0], photo[0, 0, 0])
    out.sum().backward()
    assert image.grad is not None
    with pytest.raises(ValueError, match="differ"):
        composite(_rendering(image, mask), torch.rand(1, 8, 8, 3))


def test_paste_alpha_feathers_the_edge_and_keeps_non_skin_out_of_the_rim_only():
    side = 200
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    coverage = (((yy - 100) ** 2 + (xx - 100) ** 2) < 80 ** 2).float()  # a disc, the face
    skin = coverage.clone()
    skin[10:40, :] = 0  # a hat brim across the top of the disc, inside its outline
    skin[95:105, 70:130] = 0  # "eyes": not skin-coloured, but well inside the face
    alpha = paste_alpha(coverage, skin)
    assert alpha.shape == coverage.shape and float(alpha.min()) >= 0 and float(alpha.max()) <= 1
    assert float(alpha[coverage == 0].max()) == 0  # nothing outside the face
    assert float(alpha[100, 100]) == pytest.approx(1.0) and float(alpha[100, 75]) == pytest.approx(1.0)  # the eyes stay rendered
    assert float(alpha[30, 100]) < 0.05  # the brim stays the photo's
    edge = alpha[100, 15:30]  # across the disc's left edge: a ramp, not a step
    assert ((edge > 0.05) & (edge < 0.95)).sum() >= 3 and bool((edge[1:] >= edge[:-1] - 1e-6).all())
    plain = paste_alpha(coverage)
    assert float(plain[30, 100]) == pytest.approx(1.0)  # without M_face only the edge is softened
    batched = paste_alpha(coverage[None].expand(2, -1, -1), skin[None].expand(2, -1, -1))
    assert torch.allclose(batched[1], alpha)
    with pytest.raises(ValueError, match="differ"):
        paste_alpha(coverage, skin[:100])
