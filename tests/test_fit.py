"""The analysis-by-synthesis losses and the per-photo fit."""

import pytest
import torch

from facelib.fit import FitConfig, fit, initial_params, render_params
from facelib.losses import coefficient_prior, landmark_loss, lighting_prior, photometric_loss
from facelib.render import FaceRenderer


def test_photometric_loss_is_zero_for_identical_images_and_grows():
    image = torch.rand(2, 8, 8, 3)
    mask = torch.ones(2, 8, 8)
    assert photometric_loss(image, image, mask) < 1e-3
    small, large = photometric_loss(image + 0.05, image, mask), photometric_loss(image + 0.2, image, mask)
    assert 0 < small < large
    assert torch.isclose(large, torch.tensor(0.2 * 3**0.5), atol=1e-3)  # the RGB distance of a uniform shift
    mask[:, :4] = 0
    shifted = image.clone()
    shifted[:, :4] += 1.0  # outside the mask: ignored
    assert photometric_loss(shifted, image, mask) < 1e-3


def test_landmark_loss_and_priors():
    points = torch.rand(1, 68, 2) * 224
    assert landmark_loss(points, points) == 0
    assert torch.isclose(landmark_loss(points + 2.24, points), torch.tensor(2 * 0.01**2))
    weights = torch.ones(68)
    weights[0] = 69.0
    moved = points.clone()
    moved[0, 0, 0] += 22.4
    assert torch.isclose(landmark_loss(moved, points, weights), torch.tensor(69 * 0.1**2 / 68))
    zeros = torch.zeros(1, 80)
    assert coefficient_prior(zeros, zeros[:, :64], zeros) == 0 < coefficient_prior(zeros + 1, zeros[:, :64], zeros)
    white = torch.rand(1, 1, 9).repeat(1, 3, 1).view(1, 27)
    assert lighting_prior(white) < 1e-7 < lighting_prior(torch.rand(1, 27))
    assert lighting_prior(white, strength=1.0) > lighting_prior(white)


def test_fit_recovers_a_synthetic_face(open_model):
    torch.manual_seed(0)
    renderer = FaceRenderer.for_model(open_model, 96)
    truth = initial_params(open_model, 1)
    truth["id"] = torch.randn(1, open_model.layout.n_id) * 0.7
    truth["tex"] = torch.randn(1, open_model.layout.n_tex) * 0.7
    truth["angles"] = torch.tensor([[0.1, 0.35, 0.05]])
    truth["gamma"] = torch.zeros(1, 27)
    truth["gamma"][:, [1, 10, 19]] = 0.2  # light from above
    with torch.no_grad():
        target = render_params(open_model, renderer, truth)
    image = target.image.clamp(0, 1) * target.mask[..., None] + 0.5 * (1 - target.mask[..., None])
    start = render_params(open_model, renderer, initial_params(open_model, 1))
    result = fit(open_model, image, target.landmarks, renderer, config=FitConfig(steps=80, landmark_steps=20, lr=0.05, frames=3))
    assert len(result.frames) == 3 and len(result.history["total"]) == 80
    start_error = (start.landmarks - target.landmarks).norm(dim=-1).mean()
    end_error = (result.rendering.landmarks - target.landmarks).norm(dim=-1).mean()
    assert end_error < 1.5 and end_error < 0.2 * start_error, (start_error, end_error)
    assert (result.params["angles"] - truth["angles"]).abs().max() < 0.08
    assert result.history["photometric"][-1] < 0.6 * result.history["photometric"][20]


def test_fit_rejects_mismatched_inputs(open_model):
    with pytest.raises(ValueError, match="landmarks must be"):
        fit(open_model, torch.rand(1, 64, 64, 3), torch.rand(2, 5, 2))
    with pytest.raises(ValueError, match="5 .* or 68"):
        fit(open_model, torch.rand(1, 64, 64, 3), torch.rand(1, 7, 2), config=FitConfig(steps=1))


def test_the_prior_can_be_centred_on_a_guess(open_model):
    # Priors alone (no image, no landmarks): from a guess, the usual prior pulls the coefficients towards
    # the mean face; centred on the guess, it leaves them where they are.
    g = torch.Generator().manual_seed(3)
    guess = {k: torch.randn(1, n, generator=g) for k, n in (("id", 80), ("exp", 64), ("tex", 80))}
    config = FitConfig(steps=20, landmark_steps=20, landmark_weight=0.0, coef_weight=1.0, lr=0.05, frames=0)
    image, points = torch.full((1, 32, 32, 3), 0.5), torch.full((1, 5, 2), 16.0)
    pulled = fit(open_model, image, points, config=config, init=guess)
    kept = fit(open_model, image, points, config=config, init=guess, prior_mean=guess)
    for k in guess:
        assert pulled.params[k].norm() < 0.9 * guess[k].norm()
        assert torch.allclose(kept.params[k], guess[k], atol=1e-5)
    with pytest.raises(ValueError, match="prior_mean holds 'angles'"):
        fit(open_model, image, points, config=config, prior_mean={"angles": torch.zeros(1, 3)})


def test_the_prior_at_a_regressor_guess_is_looser(open_model, monkeypatch):
    # fit_with_skin_mask weighs the coefficient prior at PRIOR_AT_INIT_WEIGHT in both fits when it is
    # centred on a guess, and at FitConfig's default when it is centred on the mean face.
    import facelib.fit as fitting

    seen = []

    def spy(*args, config=None, prior_mean=None, **kwargs):
        seen.append((config.coef_weight, prior_mean is not None))
        return real(*args, config=config, prior_mean=prior_mean, **kwargs)

    real = fitting.fit
    monkeypatch.setattr(fitting, "fit", spy)
    renderer = FaceRenderer.for_model(open_model, 48)
    photo, points = torch.rand(1, 48, 48, 3), torch.full((1, 5, 2), 24.0) + torch.randn(1, 5, 2)
    guess = {k: torch.zeros(1, n) for k, n in (("id", 80), ("exp", 64), ("tex", 80))}
    for init, at_init in ((guess, True), (guess, False), (None, True)):
        seen.clear()
        fitting.fit_with_skin_mask(open_model, photo, points, renderer, 2, 1, init, prior_at_init=at_init)
        centred = at_init and init is not None
        assert seen == [(fitting.PRIOR_AT_INIT_WEIGHT if centred else FitConfig().coef_weight, centred)] * 2
    assert fitting.PRIOR_AT_INIT_WEIGHT < FitConfig().coef_weight
    assert fitting.prior_weight(guess) == fitting.PRIOR_AT_INIT_WEIGHT
    assert fitting.prior_weight(None) == fitting.prior_weight({}) == FitConfig().coef_weight
    assert set(fitting.prior_centre(guess | {"angles": torch.zeros(1, 3)})) == {"id", "exp", "tex"}
    assert fitting.prior_centre({"angles": torch.zeros(1, 3)}) is None  # a guess without coefficients centres nothing


def test_the_grayscale_term_sees_brightness_not_hue():
    from facelib.losses import grayscale, grayscale_photometric_loss

    target = torch.rand(1, 6, 6, 3)
    luma = grayscale(target)
    assert torch.allclose(luma[..., 0], 0.299 * target[..., 0] + 0.587 * target[..., 1] + 0.114 * target[..., 2])
    # A change of hue that keeps the luma costs nothing; a change of brightness does.
    hue = torch.tensor([0.114, 0.0, -0.299]) * 0.3
    mask = torch.ones(1, 6, 6)
    assert grayscale_photometric_loss(target + hue, target, mask) < 1e-3 < photometric_loss(target + hue, target, mask)
    assert grayscale_photometric_loss(target + 0.1, target, mask) > 0.1


def test_the_refit_mask_keeps_the_mouth(open_model):
    # M_face is a skin colour model and leaves the lips out; lips_region puts the mouth back into
    # the refit's mask: inside the rendered face, covering every pixel where the lips render, and
    # reaching a few pixels beyond them (lips the first fit placed a little off).
    import copy

    from facelib.fit import FitResult, lips_region

    renderer = FaceRenderer.for_model(open_model, 112)
    with torch.no_grad():
        rendering = render_params(open_model, renderer, initial_params(open_model, 1))
    result = FitResult(initial_params(open_model, 1), rendering, {}, [])
    tight, grown = lips_region(open_model, result, margin=0), lips_region(open_model, result)
    lips = open_model.masks["lips"].to(rendering.image)[None, :, None]
    where_lips = rendering.fragments.interpolate(lips)[..., 0] * rendering.mask
    assert torch.allclose(tight, where_lips.clamp(0, 1))
    assert 0 < (tight > 0.5).sum() < (grown > 0.5).sum() < 0.2 * rendering.mask.sum()
    assert (grown >= tight).all() and float(grown.max()) <= 1.0
    # The mouth sits below the eyes: the region's centre is in the lower half of the face.
    rows = torch.arange(112.0)[None, :, None]
    face_centre = float((rows * rendering.mask).sum() / rendering.mask.sum())
    assert float((rows * tight).sum() / tight.sum()) > face_centre
    # With the photo, only pixels redder and not brighter than its skin count: lips, not teeth.
    skin_colour, lip_colour, teeth_colour = torch.tensor([0.8, 0.6, 0.5]), torch.tensor([0.7, 0.35, 0.35]), torch.tensor([0.95, 0.95, 0.9])
    left = (torch.arange(112.0) < float((torch.arange(112.0)[None, None, :] * tight).sum() / tight.sum()))[None, None, :, None]
    photo = skin_colour.expand(1, 112, 112, 3).clone()
    photo = torch.where((grown > 0)[..., None], torch.where(left, lip_colour, teeth_colour), photo)
    gated = lips_region(open_model, result, photo, rendering.mask)
    red = (grown > 0) & left[..., 0]
    assert torch.allclose(gated[red], grown[red]) and float(gated[~red].abs().max()) == 0.0
    # Redder than the skin but brighter (pink-lit teeth, a highlight): not lips either.
    bright_red = torch.where((grown > 0)[..., None], torch.tensor([1.0, 0.75, 0.65]), skin_colour.expand(1, 112, 112, 3))
    assert lips_region(open_model, result, bright_red, rendering.mask).sum() == 0
    gray = photo.mean(-1, keepdim=True).expand(-1, -1, -1, 3)
    assert lips_region(open_model, result, gray, rendering.mask).sum() == 0  # no redness: the refit keeps M_face alone
    no_lips = copy.copy(open_model)
    no_lips.masks = {k: v for k, v in open_model.masks.items() if k != "lips"}
    assert lips_region(no_lips, result).sum() == 0
