"""CoefficientMirror (a face's unknowns in the mirror image) and the regressor's mirror average."""

import pytest
import torch

from facelib import config as settings
from facelib.fit import render_params
from facelib.morphable import MorphableModel
from facelib.morphable.mirror import CoefficientMirror
from facelib.nets import Regressor, load_regressor, save_regressor
from facelib.nets.regressor import REGRESSOR_WEIGHTS_ENV
from facelib.render import FaceRenderer

FLIP_X = torch.tensor([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def mirror(open_model):
    return CoefficientMirror(open_model)


def random_params(model: MorphableModel, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Faces turned, rolled, off centre and lit from one side: every part the mirror must change."""
    g = torch.Generator().manual_seed(seed)
    params = {k: v * 0.8 for k, v in model.sample(batch, g).items()}
    params["angles"] = torch.tensor([0.1, 0.5, 0.15]).expand(batch, 3) * (torch.rand(batch, 3, generator=g) + 0.5)
    params["translation"] = torch.tensor([0.06, -0.03, 0.0]).expand(batch, 3).clone()
    gamma = torch.randn(batch, 3, 9, generator=g) * 0.1
    gamma[:, :, 3] += 0.4  # light from one side (the x band), the same in every channel: a visible shading gradient
    params["gamma"] = gamma.reshape(batch, 27)
    return params


def test_the_bases_are_closed_under_the_mirror(mirror):
    # The open model is built symmetric; 2 % of a basis outside its span would already show.
    assert set(mirror.residual) == {"id", "exp", "tex"}
    assert all(r < 0.02 for r in mirror.residual.values()), mirror.residual


def test_mirrored_coefficients_give_the_mirrored_shape_and_albedo(open_model, mirror):
    params = random_params(open_model, 3)
    m = mirror(params)
    shape, mirrored_shape = open_model.shape(params["id"], params["exp"]), open_model.shape(m["id"], m["exp"])
    expected = shape[:, open_model.mirror] * FLIP_X
    scale = (shape - open_model.mean_shape).norm(dim=-1).mean()
    assert (mirrored_shape - expected).norm(dim=-1).mean() < 0.03 * scale
    albedo, mirrored_albedo = open_model.albedo(params["tex"]), open_model.albedo(m["tex"])
    assert (mirrored_albedo - albedo[:, open_model.mirror]).abs().mean() < 0.03 * (albedo - open_model.mean_tex).abs().mean()


def test_mirroring_twice_gives_the_face_back(open_model, mirror):
    params = random_params(open_model, 2, seed=1)
    back = mirror(mirror(params))
    for name in ("angles", "translation", "gamma"):
        assert torch.equal(back[name], params[name]), name
    # Coefficient by coefficient the last, smallest components mix (their shapes are not quite symmetric);
    # what they describe, the face, comes back.
    shape, again = open_model.shape(params["id"], params["exp"]), open_model.shape(back["id"], back["exp"])
    assert (again - shape).norm(dim=-1).mean() < 0.03 * (shape - open_model.mean_shape).norm(dim=-1).mean()
    albedo, again = open_model.albedo(params["tex"]), open_model.albedo(back["tex"])
    assert (again - albedo).abs().mean() < 0.03 * (albedo - open_model.mean_tex).abs().mean()


def test_the_mirrored_unknowns_render_the_flipped_image(open_model, mirror):
    # Pose, translation and light are checked where they act: per vertex (every SH band, no rasteriser
    # in between) and in the picture.
    renderer = FaceRenderer.for_model(open_model, 96)
    params = random_params(open_model, 2, seed=2)
    with torch.no_grad():
        plain, mirrored = render_params(open_model, renderer, params), render_params(open_model, renderer, mirror(params))
    partner = open_model.mirror
    assert (mirrored.screen[..., 0] - (96 - plain.screen[:, partner, 0])).abs().mean() < 0.05  # pixels
    assert (mirrored.screen[..., 1] - plain.screen[:, partner, 1]).abs().mean() < 0.05
    colour_error = (mirrored.colors - plain.colors[:, partner]).abs().mean()
    assert colour_error < 0.01 * plain.colors.abs().mean(), float(colour_error)
    for band in (3, 4, 7):  # a mirror that forgot any odd band's sign lights the other side
        gamma = params["gamma"].clone().view(-1, 3, 9)
        gamma[:, :, band] += 0.3
        lit = dict(params, gamma=gamma.reshape(-1, 27))
        with torch.no_grad():
            forgot = render_params(open_model, renderer, dict(mirror(lit), gamma=lit["gamma"]))
            right = render_params(open_model, renderer, mirror(lit))
            truth = render_params(open_model, renderer, lit).colors[:, partner]
        assert (forgot.colors - truth).abs().mean() > 10 * (right.colors - truth).abs().mean(), band
    flipped_mask = plain.mask.flip(2)
    both = (flipped_mask * mirrored.mask).bool()
    assert both.sum() / (flipped_mask + mirrored.mask).clamp(max=1).sum() > 0.97  # the silhouettes coincide
    error = (mirrored.image - plain.image.flip(2)).abs()[both].mean()
    assert error < 0.02, float(error)
    # A mirror that forgot the light's sign would fail: the side light is on the other cheek.
    wrong = dict(mirror(params), gamma=params["gamma"])
    with torch.no_grad():
        lit_wrong = render_params(open_model, renderer, wrong)
    assert (lit_wrong.image - plain.image.flip(2)).abs()[both].mean() > 5 * error


def test_a_model_without_a_mirror_map_is_refused(open_model):
    bare = MorphableModel(open_model.mean_shape, open_model.id_base, open_model.exp_base, open_model.mean_tex, open_model.tex_base,
                          open_model.triangles, open_model.landmarks, None, open_model.masks, name="no mirror")
    with pytest.raises(ValueError, match="no mirror map"):
        CoefficientMirror(bare)


@pytest.fixture(scope="module")
def busy(open_model):
    """A small regressor whose head is not zero, so that its predictions differ from image to image."""
    torch.manual_seed(3)
    regressor = Regressor(open_model.layout, "resnet10", input_size=32).eval()
    torch.nn.init.normal_(regressor.head.weight, std=0.05)
    return regressor


def test_the_mirror_average_is_symmetric_and_lies_between_the_two_views(open_model, mirror, busy):
    images = torch.rand(2, 40, 40, 3)
    with torch.no_grad():
        busy.average_mirror(None)
        plain, flipped = busy(images), busy(images.flip(2))
        busy.average_mirror(mirror)
        averaged, feature = busy(images, return_features=True)
        averaged_flipped = busy(images.flip(2))
        busy.average_mirror(None)
    assert not torch.allclose(plain["id"], mirror(flipped)["id"])  # the two views disagree: there is something to average
    back = mirror(flipped)
    for name in plain:
        assert torch.allclose(averaged[name], (plain[name] + back[name]) / 2, atol=1e-5), name
    # The flipped image's average is the mirror of the image's (up to the bases' small asymmetry).
    mirrored = mirror(averaged)
    for name in ("angles", "translation", "gamma"):
        assert torch.allclose(averaged_flipped[name], mirrored[name], atol=1e-5), name
    shape = open_model.shape(averaged_flipped["id"], averaged_flipped["exp"])
    expected = open_model.shape(mirrored["id"], mirrored["exp"])
    assert (shape - expected).norm(dim=-1).mean() < 0.03 * (expected - open_model.mean_shape).norm(dim=-1).mean()
    assert torch.allclose(feature, busy.features(images), atol=1e-5)  # the feature stays the unflipped image's


def test_load_regressor_averages_only_when_given_the_model(open_model, busy, tmp_path, monkeypatch):
    monkeypatch.delenv(REGRESSOR_WEIGHTS_ENV, raising=False)
    path = save_regressor(tmp_path / "r.pt", busy)
    plain = load_regressor(path, verbose=False)
    averaged = load_regressor(path, verbose=False, model=open_model)
    assert plain.mirror_average is None and isinstance(averaged.mirror_average, CoefficientMirror)
    images = torch.rand(1, 40, 40, 3)
    with torch.no_grad():
        assert not torch.allclose(plain(images)["id"], averaged(images)["id"])
    # No weights at all: the untrained regressor predicts the mean face, its own mirror; nothing to average.
    monkeypatch.setattr(settings, "DATA_DIR", tmp_path / "empty")
    assert load_regressor(allow_untrained=True, verbose=False, model=open_model).mirror_average is None
    small = Regressor(type("Layout", (), {"n_id": 40, "n_exp": 64, "n_tex": 80})(), "resnet10", input_size=32)
    with pytest.raises(ValueError, match="40"):
        small.average_mirror(CoefficientMirror(open_model))
