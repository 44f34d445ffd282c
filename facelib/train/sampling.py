"""Which items a training step uses, and its random draws: a pure function of (seed, step, rank).

Determinism without data-loader state: the items of a step come from :class:`StepSampler` (a fresh
permutation per epoch, ranks interleaved), and every random draw inside a step (the gradient
penalty's interpolation) comes from :func:`step_generator`, seeded by (seed, step, rank). Nothing
depends on what ran before, so a resumed run repeats the uninterrupted one exactly, given the same
weights and optimiser states (which the checkpoint holds).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


class StepSampler:
    """The dataset indices of each step and rank: a pure function of (seed, step, rank).

    Global position p = (step x world + rank) x batch + j, for j < batch; epoch e = p // n and the
    index is perm_e[p mod n], where perm_e is a permutation of [0, n) seeded by (seed, e). Within
    an epoch every item is used once, the ranks' shards are disjoint, and nothing depends on what
    ran before, so a resumed run needs no sampler state.
    """

    def __init__(self, n: int, batch: int, world_size: int = 1, seed: int = 0) -> None:
        if n < 1:
            raise ValueError("the dataset is empty")
        self.n, self.batch, self.world_size, self.seed = n, batch, world_size, seed
        self._cache: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            state = np.random.SeedSequence([self.seed, zlib.crc32(b"epoch"), epoch]).generate_state(2, np.uint32)
            gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            self._cache = {epoch: torch.randperm(self.n, generator=gen)}  # one epoch at a time is all a step needs (two at a seam)
        return self._cache[epoch]

    def indices(self, step: int, rank: int = 0) -> list[int]:
        out = []
        start = (step * self.world_size + rank) * self.batch
        for p in range(start, start + self.batch):
            epoch = p // self.n
            out.append(int(self.permutation(epoch)[p % self.n]))
        return out

    def epoch(self, step: int) -> int:
        return (step * self.world_size * self.batch) // self.n


def step_generator(seed: int, step: int, rank: int, stream: str = "step") -> torch.Generator:
    """A CPU generator seeded by (seed, step, rank, stream): the random draws of one step."""
    state = np.random.SeedSequence([seed, zlib.crc32(stream.encode()), step, rank]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
