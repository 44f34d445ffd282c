"""Lin et al.'s loss weights over training, and the total loss composed from named terms.

    L = s1 (L_pix + s2 L_id + s3 L_adv) + s4 (L_vert(T, T') + L_vert(T_p, T~'))

s2 = 0.2 and s3 = 0.001 are fixed; s1 ramps 0 -> 1 while s4 ramps 1 -> 0, so training starts by
keeping the GCN's albedo near the 3DMM's and near the photo's vertex colours, then hands over to
the rendering losses. Two ramps are offered:

* ``"linear"`` (default): s1 = min(step / ramp_steps, 1), s4 = 1 - s1, smooth in steps;
* ``"official"``: the official code's per-epoch staircase, s1 = min(0.2 epoch, 1) and
  s4 = max(1 - s1, 0.2) (never below its 0.2 floor), with ``epoch = step // steps_per_epoch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

RENDER_TERMS = ("pixel", "identity", "adversarial")
VERTEX_TERMS = ("vertex", "projected")


@dataclass(frozen=True)
class Schedule:
    """The loss weights s1..s4 at each training step.

    Attributes:
        ramp_steps: steps over which s1 goes 0 -> 1 and s4 1 -> 0 (linear mode).
        mode: "linear" or "official".
        steps_per_epoch: the epoch length for the official staircase.
        s2, s3: the fixed weights of the identity and adversarial terms.
        floor: the lowest s4 of the official mode.
    """

    ramp_steps: int = 1000
    mode: str = "linear"
    steps_per_epoch: int = 1000
    s2: float = 0.2
    s3: float = 0.001
    floor: float = 0.2

    def __post_init__(self) -> None:
        if self.mode not in ("linear", "official"):
            raise ValueError(f"mode must be 'linear' or 'official', got {self.mode!r}")
        if self.ramp_steps < 1 or self.steps_per_epoch < 1:
            raise ValueError("ramp_steps and steps_per_epoch must be >= 1")

    def weights(self, step: int) -> dict[str, float]:
        """{"s1", "s2", "s3", "s4"} at ``step`` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.mode == "linear":
            s1 = min(step / self.ramp_steps, 1.0)
            s4 = 1.0 - s1
        else:
            s1 = min(0.2 * (step // self.steps_per_epoch), 1.0)
            s4 = max(1.0 - s1, self.floor)
        return {"s1": s1, "s2": self.s2, "s3": self.s3, "s4": s4}

    def total(self, step: int, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Composes L from named terms; missing terms count as zero.

        Args:
            step: the training step.
            terms: any of "pixel", "identity", "adversarial" (rendering terms) and "vertex",
                "projected" (vertex terms), each a scalar tensor.

        Returns:
            (L, a log dict with every term, the weights and the total as floats).
        """
        unknown = set(terms) - set(RENDER_TERMS) - set(VERTEX_TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; expected some of {RENDER_TERMS + VERTEX_TERMS}")
        w = self.weights(step)
        zero = next(iter(terms.values())).new_zeros(()) if terms else torch.zeros(())
        render = terms.get("pixel", zero) + w["s2"] * terms.get("identity", zero) + w["s3"] * terms.get("adversarial", zero)
        vertex = terms.get("vertex", zero) + terms.get("projected", zero)
        total = w["s1"] * render + w["s4"] * vertex
        log = {name: float(value.detach()) for name, value in terms.items()} | w | {"total": float(total.detach())}
        return total, log
