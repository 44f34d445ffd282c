"""Exercises of lesson 04 (losses), with facelib's reference implementations."""

from __future__ import annotations

import torch

from facelib.course.check import Exercise, expect, expect_close, expect_tensor
# The references of exercises 4.1 and 4.3 are facelib's own.
from facelib.losses.adversarial import gradient_penalty
from facelib.losses.identity import identity_loss
from facelib.losses.schedule import Schedule
from facelib.data import SyntheticFaces
from facelib.losses import projected_color_loss, vertex_loss


def _test_identity_loss(answer) -> None:
    g = torch.Generator().manual_seed(21)
    a, b = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    out = expect_tensor(answer(a, b), "the loss", ())
    expect(abs(float(answer(a, a))) < 1e-5, "identical embeddings should give 0")
    expect(abs(float(answer(a, -a)) - 2.0) < 1e-5, "opposite embeddings should give 2 (1 - cos = 1 - (-1))")
    expect(abs(float(answer(a, 3 * a))) < 1e-5, "the loss should not depend on the embeddings' lengths: normalise them (cosine similarity)")
    expect_close(out, identity_loss(a, b), "the loss of random embeddings (one cosine per row, then the batch mean)")
    # Raw descriptors as dlib's network gives them: 128-D, unnormalised, all from one face crop pair.
    d = 0.1 * torch.randn(2, 128, generator=g)
    expect_close(answer(d[:1], d[1:]), identity_loss(d[:1], d[1:]), "the loss of one pair of raw 128-D descriptors (shape (1, 128))")


identity_loss_exercise = Exercise(
    "Exercise 4.1: the identity loss", identity_loss, _test_identity_loss,
    "torch.nn.functional.cosine_similarity(a, b, dim=-1) gives one cosine per row; the loss is the mean of 1 - cosine.",
)


def schedule_weights(step: int, ramp_steps: int) -> dict[str, float]:
    """Lin et al.'s loss weights with a linear ramp (facelib's :class:`~facelib.losses.Schedule`)."""
    return Schedule(ramp_steps=ramp_steps).weights(step)


def _test_schedule(answer) -> None:
    out = answer(0, 100)
    expect(isinstance(out, dict) and set(out) == {"s1", "s2", "s3", "s4"}, "return a dict with the keys s1, s2, s3 and s4")
    for step in (0, 30, 100, 250):
        ref, got = schedule_weights(step, 100), answer(step, 100)
        for key in ("s2", "s3"):
            expect(abs(got[key] - ref[key]) < 1e-9, f"{key} is fixed throughout training (see the formula above)")
        expect(abs(got["s1"] - ref["s1"]) < 1e-9, f"s1 at step {step} of a {100}-step ramp is wrong: it goes linearly from 0 to 1, then stays at 1")
        expect(abs(got["s4"] - ref["s4"]) < 1e-9, f"s4 at step {step} is wrong: it goes from 1 down to 0 as s1 rises")


schedule_exercise = Exercise(
    "Exercise 4.2: the loss schedule", schedule_weights, _test_schedule,
    "s1 is step / ramp_steps capped at 1; s4 is what s1 leaves of 1; s2 and s3 are constants.",
)


def _test_gradient_penalty(answer) -> None:
    g = torch.Generator().manual_seed(22)
    real, fake = torch.randn(3, 2, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    eps = torch.tensor([0.0, 0.5, 1.0])
    w = torch.randn(2, 4, generator=g)
    linear = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731  (gradient w everywhere)
    out = expect_tensor(answer(linear, real, fake, eps), "the penalty", ())
    expect(abs(float(out) - float((w.norm() - 1) ** 2)) < 1e-4,
           "for a linear critic D(x) = <w, x> the penalty is (||w|| - 1)^2 whatever the images: take the norm of the gradient over all of a sample's entries")
    square = lambda x: x.pow(2).flatten(1).sum(1)  # noqa: E731  (gradient 2 x)
    expect_close(answer(square, real, fake, eps).detach(), gradient_penalty(square, real, fake, eps).detach(),
                 "the penalty of D(x) = ||x||^2, whose gradient depends on where x_hat lies "
                 "(x_hat = eps * real + (1 - eps) * fake, one eps per sample)", atol=1e-4)
    weight = torch.randn(2, 4, generator=g, requires_grad=True)
    critic = lambda x: ((x * weight).flatten(1).sum(1)) ** 2  # noqa: E731
    penalty = answer(critic, real, fake, eps)
    expect(penalty.requires_grad, "the penalty carries no gradient back to the critic: pass create_graph=True to torch.autograd.grad, "
                                  "so that the penalty can train the critic")
    penalty.backward()
    expect(weight.grad is not None and weight.grad.abs().sum() > 0,
           "no gradient reached the critic's parameters: pass create_graph=True to torch.autograd.grad, so the penalty can train the critic")


gradient_penalty_exercise = Exercise(
    "Exercise 4.3: the gradient penalty", gradient_penalty, _test_gradient_penalty,
    "Mix real and fake per sample with epsilon (reshape it to broadcast), make the mix require grad, take "
    "torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True), flatten each sample's gradient, take its norm, "
    "and average (norm - 1)^2.",
)


def texture_pairs(n: int, size: int = 96, seed: int = 4, level: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of images that differ only in the texture, for a critic of texture realism.

    Synthetic faces (their own split, never the benchmark's) rendered twice into the same photo, with
    the same shape, pose and light: once with the true albedo, which has the detail layer (freckles,
    moles, stubble, lip and brow colour), once with its smooth 3DMM part alone, what a 3DMM can hold.

    Returns:
        (n, size, size, 3) twice: the detailed images ("photos") and the 3DMM renderings.
    """
    faces = SyntheticFaces(n=n, size=size, seed=seed, level=level, split="lesson04-critic")
    detailed, smooth = [], []
    for batch in faces.batches(32):
        with torch.no_grad():
            shape = faces.model.shape(batch["id"], batch["exp"])
            for albedo, out in ((batch["albedo"], detailed), (batch["albedo_base"], smooth)):
                r = faces.renderer.render(shape, albedo, batch["angles"], batch["translation"], batch["gamma"])
                out.append(r.image.clamp(0, 1) * r.mask[..., None] + batch["image"] * (1 - r.mask[..., None]))
    return torch.cat(detailed), torch.cat(smooth)


def vertex_losses(albedo: torch.Tensor, refined: torch.Tensor, image_colors: torch.Tensor, shaded: torch.Tensor,
                  visibility: torch.Tensor, shaded_3dmm: torch.Tensor, hidden_weight: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Lin et al.'s two vertex losses (facelib's :func:`~facelib.losses.vertex_loss` and :func:`~facelib.losses.projected_color_loss`):

        L_vert(T, T')    = mean_{i,c} |T - T'|
        L_vert(T_p, T~') = sum_i v_i |T_p,i - T~'_i|_1 / (3 sum_i v_i) + w_h sum_i (1 - v_i) |T~_3DMM,i - T~'_i|_1 / (3 sum_i (1 - v_i))

    Args:
        albedo: (B, V, 3) T. refined: (B, V, 3) T'. image_colors: (B, V, 3) T_p. shaded: (B, V, 3) T~', T' lit.
        visibility: (B, V) 0/1. shaded_3dmm: (B, V, 3) T lit. hidden_weight: w_h (the official code: 0.3).

    Returns:
        The two losses, () each.
    """
    return vertex_loss(albedo, refined), projected_color_loss(image_colors, shaded, visibility, shaded_3dmm, hidden_weight)


def _test_vertex_losses(answer) -> None:
    g = torch.Generator().manual_seed(44)
    b, v = 2, 50
    t, t_ref, tp, shaded, shaded_3dmm = (torch.rand(b, v, 3, generator=g, dtype=torch.float64) for _ in range(5))
    vis = (torch.rand(b, v, generator=g) > 0.4).double()
    out = answer(t, t_ref, tp, shaded, vis, shaded_3dmm, 0.3)
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "return (L_vert(T, T'), L_vert(T_p, T~'))")
    l_t = expect_tensor(torch.as_tensor(out[0]), "L_vert(T, T')", ()).double()
    l_p = expect_tensor(torch.as_tensor(out[1]), "L_vert(T_p, T~')", ()).double()
    ref_t, ref_p = vertex_losses(t, t_ref, tp, shaded, vis, shaded_3dmm, 0.3)
    expect(abs(float(l_t - ref_t)) < 1e-9, "L_vert(T, T') is the mean of |T - T'| over vertices and channels (L1, not squared)")
    only_visible = ((tp - shaded).abs() * vis[..., None]).sum() / (3 * vis.sum())
    expect(abs(float(l_p - (tp - shaded).abs().mean())) > 1e-9,
           "L_vert(T_p, T~') counts only the visible vertices: T_p is zero where the vertex is hidden")
    expect(abs(float(l_p - only_visible)) > 1e-9, "the hidden vertices' term is missing: add hidden_weight x the mean |T~_3DMM - T~'| "
                                                   "over the hidden vertices")
    expect(abs(float(l_p - ref_p)) < 1e-9, "L_vert(T_p, T~') is off: the visible term is a mean over visible vertices and the "
                                            "three channels (divide by 3 x their number); the hidden term the same over the hidden ones")
    _, zero_w = answer(t, t_ref, tp, shaded, vis, shaded_3dmm, 0.0)
    expect(abs(float(zero_w) - float(only_visible)) < 1e-9, "with hidden_weight = 0 only the visible term is left")
    _, all_visible = answer(t, t_ref, tp, shaded, torch.ones(b, v, dtype=torch.float64), shaded_3dmm, 0.3)
    expect(abs(float(all_visible) - float((tp - shaded).abs().mean())) < 1e-9,
           "with every vertex visible there are no hidden vertices: their term must be 0 (guard the division by their count)")


vertex_losses_exercise = Exercise(
    "Exercise 4.4: the two vertex losses", vertex_losses, _test_vertex_losses,
    "v = visibility[..., None]; visible term ((T_p - T~') .abs() * v).sum() / (3 * v.sum()); hidden term the same with 1 - v and "
    "T~_3DMM in place of T_p, its count clamped to at least 1.",
)
