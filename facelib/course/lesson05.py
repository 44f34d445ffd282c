"""Exercises of lesson 05 (full GPU training), with facelib's reference implementations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from facelib.course.check import Exercise, expect, expect_tensor
# The references are facelib's own.
from facelib.evaluate import paired_improvement
from facelib.train.checkpoint import atomic_save
from facelib.train.trainer import StepSampler


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
