"""WGAN-GP (Gulrajani et al. 2017): the adversarial term that makes rendered faces look like photos.

The critic D scores images; the Wasserstein objective trains it to score real photos high and
rendered faces low, and the generator (here the texture GCNs) to raise the scores of its renders:

    L_critic    = E[D(fake)] - E[D(real)] + lambda E[(||grad_x D(x_hat)||_2 - 1)^2],
    L_generator = -E[D(fake)],

with x_hat = eps real + (1 - eps) fake on random straight lines between the two, eps ~ U(0, 1)
drawn **per sample** (the paper's Algorithm 1; the official TF code draws one eps per batch), and
lambda = 10. The penalty keeps D close to 1-Lipschitz, which the Wasserstein distance needs.
"""

from __future__ import annotations

from typing import Callable

import torch

PENALTY_WEIGHT = 10.0


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     epsilon: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     grad_scale: float = 1.0) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates of real and fake images.

    Args:
        critic: maps (B, ...) images to (B,) scores.
        real, fake: (B, ...) images of the same shape.
        epsilon: (B,) interpolation coefficients (default: drawn from U(0, 1) per sample).
        generator: for drawing epsilon reproducibly.
        grad_scale: under fp16 autocast, a scale for the scores: they are multiplied by it before
            the gradient is taken and the gradient is divided by it in fp32 afterwards, so that
            small gradients do not underflow in fp16 (PyTorch's AMP recipe for gradient penalties).
            Keep it well inside fp16's range (the trainer caps the GradScaler's scale at 2^12: 2^16
            itself overflows). 1 for fp32 and bf16.

    Returns:
        () the penalty (without the weight lambda), differentiable with respect to the critic's
        parameters (``create_graph=True``).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} images must have the same shape")
    b = real.shape[0]
    if epsilon is None:
        epsilon = torch.rand(b, generator=generator, device=real.device if generator is None else "cpu").to(real)
    eps = epsilon.view(b, *([1] * (real.ndim - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    if not grad_scale > 0:
        raise ValueError(f"grad_scale must be > 0, got {grad_scale}")
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum() * grad_scale, x_hat, create_graph=True)
    grad = grad.float() / grad_scale
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def critic_loss(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                penalty_weight: float = PENALTY_WEIGHT, generator: torch.Generator | None = None,
                grad_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """L_critic (the fake images are detached: this step trains the critic only).

    ``grad_scale``: see :func:`gradient_penalty` (the GradScaler's scale under fp16 autocast).

    Returns:
        (the loss, a dict of its parts for logging: "wasserstein" = E[D(real)] - E[D(fake)], "penalty").
    """
    real_score, fake_score = critic(real).mean(), critic(fake.detach()).mean()
    penalty = gradient_penalty(critic, real, fake, generator=generator, grad_scale=grad_scale)
    loss = fake_score - real_score + penalty_weight * penalty
    return loss, {"wasserstein": float((real_score - fake_score).detach()), "penalty": float(penalty.detach())}


def generator_loss(critic: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor) -> torch.Tensor:
    """L_generator = -E[D(fake)] (gradients flow into ``fake``; step only the generator's optimiser)."""
    return -critic(fake).mean()
