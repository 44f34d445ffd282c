"""Paired-bootstrap intervals of a change of per-face scores between two methods on the same faces."""

from __future__ import annotations

import torch


def paired_difference(baseline: torch.Tensor, method: torch.Tensor, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """The mean of method - baseline over the same items, with its paired-bootstrap percentile interval.

    Args:
        baseline, method: (N,) per-face scores (NaNs: the face is left out of both).

    Returns:
        (mean difference, low, high).

    Raises:
        ValueError: fewer than two faces have both scores.
    """
    if baseline.shape != method.shape or baseline.ndim != 1:
        raise ValueError(f"need two (N,) score vectors over the same faces, got {tuple(baseline.shape)} and {tuple(method.shape)}")
    keep = ~(baseline.isnan() | method.isnan())
    diff = (method[keep] - baseline[keep]).double()
    if diff.numel() < 2:
        raise ValueError("need at least two faces with both scores to compare")
    gen = torch.Generator().manual_seed(seed)
    draws = diff[torch.randint(0, diff.numel(), (resamples, diff.numel()), generator=gen)].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(draws, torch.tensor([tail, 1 - tail], dtype=draws.dtype)).tolist()
    return float(diff.mean()), low, high


def paired_improvement(baseline: torch.Tensor, method: torch.Tensor, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """How much lower a method's per-face errors are than a baseline's, with a bootstrap interval.

    The relative reduction is r = 1 - mean(method) / mean(baseline) over the same faces (paired).
    Its confidence interval comes from the paired bootstrap: draw the faces with replacement
    ``resamples`` times, recompute r on each draw, and take the central ``level`` share of the values
    (Efron and Tibshirani 1993, the percentile interval). An interval that excludes 0 says the
    improvement is not an accident of which faces the benchmark holds.

    Args:
        baseline, method: (N,) per-face errors on the same faces (NaNs: the face is left out of both).
        resamples: bootstrap draws.
        seed: the draws' seed.
        level: the interval's coverage.

    Returns:
        (r, low, high) as fractions (0.1 = 10 % lower error).
    """
    if baseline.shape != method.shape or baseline.ndim != 1:
        raise ValueError(f"need two (N,) error vectors over the same faces, got {tuple(baseline.shape)} and {tuple(method.shape)}")
    keep = ~(baseline.isnan() | method.isnan())
    base, new = baseline[keep].double(), method[keep].double()
    if base.numel() < 2:
        raise ValueError("need at least two faces with both errors to compare")
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, base.numel(), (resamples, base.numel()), generator=gen)
    ratios = 1 - new[draws].mean(1) / base[draws].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(ratios, torch.tensor([tail, 1 - tail], dtype=ratios.dtype)).tolist()
    return float(1 - new.mean() / base.mean()), low, high
