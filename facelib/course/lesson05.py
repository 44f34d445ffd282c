"""Exercises of lesson 05 (full GPU training), with facelib's reference implementations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from facelib.course.check import Exercise, expect
# The references are facelib's own.
from facelib.evaluate import paired_improvement
from facelib.train.checkpoint import atomic_save
from facelib.train.sampling import StepSampler
from facelib.losses import critic_loss, generator_loss


def step_indices(n: int, batch: int, step: int, rank: int = 0, world_size: int = 1, seed: int = 0) -> list[int]:
    """The items of one step on one rank (facelib's :class:`~facelib.train.StepSampler`)."""
    return StepSampler(n, batch, world_size, seed).indices(step, rank)


def _test_step_indices(answer) -> None:
    first = answer(10, 2, 3, 1, 2, 7)
    expect(isinstance(first, (list, tuple)) and len(first) == 2, "return a list of `batch` indices")
    expect(all(isinstance(i, int) and 0 <= i < 10 for i in first), "indices are ints in [0, n)")
    expect(list(answer(10, 2, 3, 1, 2, 7)) == list(first), "the same (n, batch, step, rank, world_size, seed) must give the same items: "
                                                       "no global random state, seed a generator from the arguments")
    for world in (1, 2, 3):
        n, batch = 12, 2
        steps = n // (batch * world)
        seen = [i for step in range(steps) for rank in range(world) for i in answer(n, batch, step, rank, world, 5)]
        expect(sorted(seen) == list(range(n)), f"with {world} rank(s), the first epoch ({steps} steps) must use every item exactly once, "
                                               "the ranks' shards disjoint: number the global positions (step x world + rank) x batch + j")
    second = [i for step in range(3, 6) for i in answer(6, 2, step, 0, 1, 5)]
    expect(sorted(second) == list(range(6)), "the second epoch must again use every item once")
    expect(any(answer(50, 5, 0, 0, 1, s) != answer(50, 5, 0, 0, 1, s + 1) for s in range(3)), "different seeds should shuffle differently")
    expect(answer(50, 50, 0, 0, 1, 0) != answer(50, 50, 1, 0, 1, 0),
           "every epoch repeats the same order: seed each epoch's permutation with the epoch too")


step_indices_exercise = Exercise(
    "Exercise 5.1: which faces a step sees", step_indices, _test_step_indices,
    "Global position p of item j: (step * world_size + rank) * batch + j. Its epoch is p // n; within the epoch take "
    "position p % n of a permutation seeded by (seed, epoch) (torch.Generator().manual_seed(...), torch.randperm).",
)


def save_atomically(payload: dict, path: str | Path) -> Path:
    """Writes a checkpoint so that a crash never leaves a half-written file (facelib's :func:`~facelib.train.atomic_save`)."""
    return atomic_save(payload, path)


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("simulated crash in the middle of writing")


def _test_save_atomically(answer) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run" / "ckpt.pt"
        written = answer({"step": 1, "w": torch.ones(3)}, path)
        expect(path.exists(), "the checkpoint was not written at `path` (create its folder first)")
        expect(written is None or Path(written) == path, "return the path written")
        loaded = torch.load(path, weights_only=True)
        expect(loaded["step"] == 1 and torch.equal(loaded["w"], torch.ones(3)), "the file should hold the payload, readable with torch.load")
        try:
            answer({"step": 2, "w": torch.zeros(3), "bad": _Unpicklable()}, path)
        except RuntimeError:
            pass
        else:
            expect(False, "a failed save returned as if it had worked: let the exception propagate (clean up, then re-raise), "
                          "so that the trainer knows the checkpoint was not written")
        try:
            survivor = torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001  (a truncated file fails to load in many ways)
            survivor = None
        expect(survivor is not None and survivor["step"] == 1,
               "a crash while writing destroyed the previous checkpoint: write to a temporary file "
               "in the same folder first, then os.replace it onto `path`")
        before = path.stat().st_ino
        answer({"step": 3}, path)
        expect(torch.load(path, weights_only=True)["step"] == 3, "a later save should replace the checkpoint")
        expect(os.access(path, os.R_OK), "the checkpoint is not readable")
        # Opening `path` for writing truncates the old checkpoint in place (the same inode): a crash
        # during that write leaves half a file, however the bytes were prepared. A rename brings a new file.
        # (Deleting `path` and then writing it is not atomic either, and can slip through: the file
        # system may hand the freed inode number straight to the new file.)
        expect(path.stat().st_ino != before,
               "the checkpoint was overwritten in place (opening `path` for writing empties it first, so a crash "
               "during the write leaves half a file): write a temporary file in the same folder, then os.replace it onto `path`")


save_atomically_exercise = Exercise(
    "Exercise 5.2: a checkpoint that survives a crash", save_atomically, _test_save_atomically,
    "tmp = path.with_name(path.name + '.tmp'); torch.save into it (flush and os.fsync make it durable), then "
    "os.replace(tmp, path): a rename within one folder is atomic, so readers see the old file or the new one, never half.",
)


def relative_reduction(baseline: torch.Tensor, method: torch.Tensor, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The relative error reduction with a 95 % paired-bootstrap interval (facelib's :func:`~facelib.evaluate.paired_improvement`)."""
    return paired_improvement(baseline, method, resamples, seed)


def _test_relative_reduction(answer) -> None:
    g = torch.Generator().manual_seed(51)
    base = 0.1 + 0.05 * torch.rand(30, generator=g)
    new = base * (0.7 + 0.2 * torch.rand(30, generator=g))
    out = answer(base, new)
    expect(isinstance(out, (tuple, list)) and len(out) == 3, "return (reduction, low, high)")
    r, low, high = (float(x) for x in out)
    ref_r, ref_low, ref_high = relative_reduction(base, new)
    expect(abs(r - ref_r) < 1e-6, "the reduction is 1 - mean(method) / mean(baseline) over all faces (a fraction, not a percentage)")
    expect(low <= r <= high, "the interval should contain the reduction itself")
    expect(abs(low - ref_low) < 0.02 and abs(high - ref_high) < 0.02,
           "the interval's ends are off: resample the faces with replacement (the same draw for both methods: paired), "
           "recompute the reduction for each draw, and take the 2.5 % and 97.5 % quantiles")
    same = answer(base, base.flip(0))
    expect(float(same[1]) < 0 < float(same[2]), "two methods with the same errors (shuffled) should give an interval around 0")


relative_reduction_exercise = Exercise(
    "Exercise 5.3: is the GCN really better?", relative_reduction, _test_relative_reduction,
    "draws = torch.randint(0, N, (resamples, N), generator=...); index both error vectors with the same draws; "
    "torch.quantile of the per-draw reductions at 0.025 and 0.975.",
)


def adversarial_step(generator: torch.nn.Module, critic: torch.nn.Module, generator_optimizer: torch.optim.Optimizer,
                     critic_optimizer: torch.optim.Optimizer, real: torch.Tensor, inputs: torch.Tensor,
                     critic_steps: int = 1, penalty_weight: float = 10.0,
                     rng: torch.Generator | None = None) -> dict[str, float]:
    """One WGAN-GP training step as facelib's trainer takes it (``Trainer.train_step``, item 6).

    The generator's images are made once; the critic takes ``critic_steps`` steps on the real images
    against them (detached: the critic's loss must not move the generator), then the generator takes
    one step on L_G = -E[D(fake)] scored by the *updated* critic.

    Args:
        generator: maps ``inputs`` to images (B, C, H, W).
        critic: maps images to (B,) scores.
        generator_optimizer, critic_optimizer: each network's optimiser.
        real: (B, C, H, W) real images.
        inputs: the generator's input.
        critic_steps: critic updates per generator update (the paper: 5).
        penalty_weight: lambda of the gradient penalty.
        rng: draws the penalty's interpolation weights.

    Returns:
        {"critic": the last critic loss, "generator": the generator loss} as floats.
    """
    fake = generator(inputs)
    loss_c = torch.zeros(())
    for _ in range(critic_steps):
        loss_c, _ = critic_loss(critic, real, fake, penalty_weight, generator=rng)
        critic_optimizer.zero_grad(set_to_none=True)
        loss_c.backward()
        critic_optimizer.step()
    loss_g = generator_loss(critic, fake)
    generator_optimizer.zero_grad(set_to_none=True)
    loss_g.backward()
    generator_optimizer.step()
    return {"critic": float(loss_c.detach()), "generator": float(loss_g.detach())}


def _toy_gan(seed: int) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    generator = torch.nn.Sequential(torch.nn.Linear(4, 3 * 8 * 8), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (3, 8, 8)))
    critic = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2, 1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(64, 1),
                                 torch.nn.Flatten(0))
    g = torch.Generator().manual_seed(seed + 1)
    return generator, critic, torch.rand(6, 3, 8, 8, generator=g), torch.randn(6, 4, generator=g)


def _run_step(step, seed: int, critic_steps: int, penalty_weight: float, junk: bool) -> tuple[dict, list[torch.Tensor], list[torch.Tensor]]:
    import copy

    generator, critic, real, inputs = _toy_gan(seed)
    generator, critic = copy.deepcopy(generator), copy.deepcopy(critic)
    if junk:  # gradients left over from an earlier step: an answer must clear them before each update
        for p in [*generator.parameters(), *critic.parameters()]:
            p.grad = torch.full_like(p, 3.0)
    g_opt = torch.optim.SGD(generator.parameters(), lr=0.1)
    c_opt = torch.optim.SGD(critic.parameters(), lr=0.1)
    out = step(generator, critic, g_opt, c_opt, real, inputs, critic_steps=critic_steps, penalty_weight=penalty_weight,
               rng=torch.Generator().manual_seed(seed + 2))
    return out, [p.detach().clone() for p in generator.parameters()], [p.detach().clone() for p in critic.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-6, rtol=1e-5) for x, y in zip(a, b))


def _test_adversarial_step(answer) -> None:
    generator, critic, _, _ = _toy_gan(0)
    start_g = [p.detach().clone() for p in generator.parameters()]
    start_c = [p.detach().clone() for p in critic.parameters()]
    out, g, c = _run_step(answer, 0, 1, 0.0, junk=False)
    expect(isinstance(out, dict) and {"critic", "generator"} <= set(out), 'return {"critic": ..., "generator": ...}')
    expect(all(isinstance(out[k], float) for k in ("critic", "generator")),
           "return the losses as Python floats (float(loss.detach())), not tensors that keep the graph alive")
    expect(not _same(c, start_c), "the critic's parameters did not change: take critic_optimizer.step() after its loss's backward()")
    expect(not _same(g, start_g), "the generator's parameters did not change: take generator_optimizer.step() after L_G's backward()")
    ref, g_ref, c_ref = _run_step(adversarial_step, 0, 1, 0.0, junk=False)
    expect(_same(c, c_ref), "the critic's step is off: its loss is E[D(fake)] - E[D(real)] (+ lambda x penalty), on the generator's "
                            "images detached, minimised with critic_optimizer alone")
    if not _same(g, g_ref):
        # The usual mistake: scoring the generator with the critic from before its update.
        expect(False, "the generator's step is off: after the critic's step(s), L_G = -E[D(fake)] with the updated critic, "
                      "then generator_optimizer.step(); the critic's loss must not move the generator (detach the fakes)")
    expect(abs(out["critic"] - ref["critic"]) < 1e-5 and abs(out["generator"] - ref["generator"]) < 1e-5,
           "the returned losses do not match the steps taken: return the last critic loss and the generator loss")
    _, g, c = _run_step(answer, 2, 1, 0.0, junk=True)
    _, g_ref, c_ref = _run_step(adversarial_step, 2, 1, 0.0, junk=True)
    expect(_same(c, c_ref) and _same(g, g_ref), "gradients left over from before (or from the other network's backward) leaked "
                                                "into an update: zero each optimiser's gradients right before its backward()")
    _, g, c = _run_step(answer, 1, 3, 0.0, junk=False)
    _, g_ref, c_ref = _run_step(adversarial_step, 1, 3, 0.0, junk=False)
    expect(_same(c, c_ref) and _same(g, g_ref), "with critic_steps=3 the result is off: the critic takes critic_steps steps "
                                                "against the same fakes, then the generator takes one")
    _, g, c = _run_step(answer, 3, 2, 10.0, junk=False)
    _, g_ref, c_ref = _run_step(adversarial_step, 3, 2, 10.0, junk=False)
    expect(_same(c, c_ref) and _same(g, g_ref), "with penalty_weight > 0 the steps are off: add penalty_weight x the gradient penalty "
                                                "to the critic's loss, its interpolation drawn with rng "
                                                "(facelib.losses.critic_loss(critic, real, fake, penalty_weight, generator=rng))")


adversarial_step_exercise = Exercise(
    "Exercise 5.4: one generator step and its critic steps", adversarial_step, _test_adversarial_step,
    "fake = generator(inputs) once. Critic: loss, _ = critic_loss(critic, real, fake, penalty_weight, generator=rng) "
    "(it detaches the fakes), zero_grad, backward, step, critic_steps times. Generator: generator_loss(critic, fake), "
    "zero_grad, backward, step.",
)


def toy_discs(n: int, size: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 3, size, size) "real" images for a GAN small enough to train in seconds: skin-coloured discs
    of random place and radius on black."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre = torch.rand(n, 2, generator=generator) * 0.8 - 0.4
    radius = 0.35 + 0.1 * torch.rand(n, 1, 1, generator=generator)
    disc = ((xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2 < radius ** 2).float()
    return disc[:, None] * torch.tensor([0.9, 0.6, 0.5])[None, :, None, None]


def toy_gan(size: int = 16, latent: int = 8, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A generator (noise (B, latent) -> (B, 3, size, size)) and a small convolutional critic ((B, 3, size, size) -> (B,))."""
    from torch import nn

    torch.manual_seed(seed)
    generator = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 3 * size * size), nn.Sigmoid(),
                              nn.Unflatten(1, (3, size, size)))
    critic = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2),
                           nn.Flatten(), nn.Linear(32 * (size // 4) ** 2, 1), nn.Flatten(0))
    return generator, critic
