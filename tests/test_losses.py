"""Lin et al.'s losses: masks, identity, vertex terms, WGAN-GP and the schedule."""

import pytest
import torch

from facelib.losses import (Schedule, critic_loss, generator_loss, gradient_penalty, identity_loss, projected_color_loss,
                            skin_mask, vertex_loss)


def test_vertex_losses_vanish_for_identical_inputs_and_grow():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(2, 50, 3, generator=g)
    assert vertex_loss(t, t) == 0
    assert 0 < vertex_loss(t, t + 0.05) < vertex_loss(t, t + 0.2)
    assert torch.isclose(vertex_loss(t, t + 0.2), torch.tensor(0.2))
    visible = (torch.rand(2, 50, generator=g) > 0.5).float()
    assert projected_color_loss(t, t, visible) == 0
    shifted = t + 0.3 * (1 - visible[..., None])  # differs only where hidden
    assert projected_color_loss(t, shifted, visible) == 0
    assert projected_color_loss(t, shifted, visible, shaded_3dmm=t, hidden_weight=0.3) > 0
    assert torch.isclose(projected_color_loss(t, t + 0.1, visible), torch.tensor(0.1))


def test_identity_loss():
    a = torch.randn(3, 512)
    assert identity_loss(a, a) < 1e-6
    assert torch.isclose(identity_loss(a, -a), torch.tensor(2.0))
    assert identity_loss(a, a + 0.1 * torch.randn(3, 512)) < identity_loss(a, torch.randn(3, 512))


def test_skin_mask_excludes_a_pasted_occluder():
    g = torch.Generator().manual_seed(1)
    h = w = 64
    skin = torch.tensor([0.78, 0.57, 0.45])
    image = torch.tensor([0.2, 0.35, 0.6]).expand(1, h, w, 3).clone()  # blue background
    region = torch.zeros(1, h, w)
    region[:, 12:52, 16:48] = 1
    shading = 0.7 + 0.5 * torch.rand(1, h, w, 1, generator=g)  # light and shadow over the face
    image = torch.where(region[..., None] > 0, skin * shading, image)
    image[:, 20:30, 18:46] = torch.tensor([0.15, 0.12, 0.1])  # dark hair across the forehead
    image[:, 38:44, 24:40] = torch.tensor([0.1, 0.6, 0.2])  # a green microphone
    mask = skin_mask(image.clamp(0, 1), region)
    assert mask[:, 32:36, 20:44].mean() > 0.9  # the cheeks
    assert mask[:, 21:29, 19:45].mean() < 0.1  # the hair
    assert mask[:, 39:43, 25:39].mean() < 0.1  # the microphone
    assert mask[:, :8].mean() < 0.1  # the background


def test_gradient_penalty_matches_a_hand_computed_value():
    # A linear critic D(x) = sum(w * x) has gradient w everywhere: the penalty is (||w|| - 1)^2.
    w = torch.tensor([[3.0, 4.0]])

    def critic(x):
        return (x * w).sum(-1)

    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    assert torch.isclose(gradient_penalty(critic, real, fake), torch.tensor(16.0))
    # A quadratic critic D(x) = sum(x^2): gradient 2 x_hat, known for a given epsilon.
    eps = torch.tensor([0.25, 0.5])
    real, fake = torch.tensor([[1.0, 0.0], [2.0, 2.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake  # [[0.25, 0], [1, 2]]
    expected = ((2 * x_hat).norm(dim=1) - 1).pow(2).mean()
    assert torch.isclose(gradient_penalty(lambda x: x.pow(2).sum(-1), real, fake, epsilon=eps), expected)
    # Under fp16 autocast the scores are scaled before the gradient and the gradient unscaled after:
    # the same penalty, whatever the scale.
    for scale in (1.0, 1024.0, 65536.0):
        assert torch.isclose(gradient_penalty(lambda x: x.pow(2).sum(-1), real, fake, epsilon=eps, grad_scale=scale), expected)
    with pytest.raises(ValueError, match="grad_scale"):
        gradient_penalty(critic, real, fake, grad_scale=0.0)


def test_wgan_losses_train_the_right_parties():
    from facelib.nets import Discriminator

    critic = Discriminator(64, width=8)
    real = torch.rand(2, 64, 64, 3)
    fake = torch.rand(2, 64, 64, 3, requires_grad=True)
    loss, parts = critic_loss(critic, real, fake)
    loss.backward()
    assert fake.grad is None  # the critic step does not reach the generator
    assert all(p.grad is not None for p in critic.parameters())
    assert set(parts) == {"wasserstein", "penalty"}
    critic.zero_grad()
    generator_loss(critic, fake).backward()
    assert fake.grad.abs().sum() > 0


def test_schedule_hits_its_endpoints():
    s = Schedule(ramp_steps=100)
    assert s.weights(0) == {"s1": 0.0, "s2": 0.2, "s3": 0.001, "s4": 1.0}
    assert s.weights(50)["s1"] == 0.5 and s.weights(50)["s4"] == 0.5
    assert s.weights(100)["s1"] == 1.0 and s.weights(10_000)["s4"] == 0.0
    official = Schedule(mode="official", steps_per_epoch=10)
    assert official.weights(9)["s1"] == 0.0 and official.weights(10)["s1"] == 0.2
    assert official.weights(1000) == {"s1": 1.0, "s2": 0.2, "s3": 0.001, "s4": 0.2}
    terms = {"pixel": torch.tensor(1.0), "identity": torch.tensor(1.0), "vertex": torch.tensor(2.0)}
    total, log = s.total(50, terms)
    assert torch.isclose(total, torch.tensor(0.5 * (1 + 0.2) + 0.5 * 2))
    assert log["total"] == pytest.approx(1.6) and log["pixel"] == 1.0
    with pytest.raises(ValueError, match="unknown loss terms"):
        s.total(0, {"pixels": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="mode"):
        Schedule(mode="cosine")


def test_albedo_regularisers(open_model):
    from facelib.losses import albedo_symmetry, albedo_variance

    skin = open_model.masks["skin"]
    uniform = torch.full((1, open_model.num_vertices, 3), 0.6)
    assert albedo_variance(uniform, skin) == 0 and albedo_symmetry(uniform, open_model.mirror) < 1e-5
    mean = open_model.mean_tex[None]
    assert albedo_symmetry(mean, open_model.mirror) < 0.05  # the model's mean albedo is (nearly) symmetric
    one_sided = mean.clone()
    one_sided[0, open_model.mean_shape[:, 0] > 0.1] += 0.3  # darker on one side
    assert albedo_symmetry(one_sided, open_model.mirror) > albedo_symmetry(mean, open_model.mirror) + 0.05
    spotty = uniform + 0.2 * torch.randn_like(uniform)
    assert albedo_variance(spotty, skin) > albedo_variance(uniform + 0.05 * torch.randn_like(uniform), skin) > 0


def test_gradient_penalty_under_fp16_needs_an_inner_scale_below_fp16s_range():
    """Why the trainer caps the penalty's inner scale at 2^12: the gradient seed 2^16 overflows fp16 (max 65,504)."""
    from facelib.nets import Discriminator

    torch.manual_seed(0)
    critic = Discriminator(64, width=4)
    real, fake = torch.rand(2, 64, 64, 3), torch.rand(2, 64, 64, 3)
    eps = torch.tensor([0.3, 0.7])
    reference = gradient_penalty(critic, real, fake, epsilon=eps)
    with torch.autocast("cpu", dtype=torch.float16):
        capped = gradient_penalty(critic, real, fake, epsilon=eps, grad_scale=2.0 ** 12)
        overflowing = gradient_penalty(critic, real, fake, epsilon=eps, grad_scale=2.0 ** 16)
    assert torch.isfinite(capped) and torch.isclose(capped.float(), reference, rtol=0.05)
    assert not torch.isfinite(overflowing)
