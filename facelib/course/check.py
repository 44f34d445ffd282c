"""Exercise checks in the style of Kaggle's learntools: correct, not attempted yet, or what is wrong.

A lesson module defines its exercises as :class:`Exercise` objects. In a notebook the check cell
rebinds the learner's name to what the rest of the notebook should use::

    laplacian = ex.laplacian.check(laplacian)

* correct: the learner's function is returned and used from then on;
* not attempted yet (the stub raised ``NotImplementedError``): facelib's reference implementation
  is returned, so a student notebook still runs top to bottom;
* wrong: the message says what is wrong (a shape, a property, a failing case), never the expected
  values, and the reference implementation is returned so that later cells still work.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable

import torch


class Status(enum.Enum):
    """The outcome of one check."""

    CORRECT = "correct"
    NOT_ATTEMPTED = "not attempted yet"
    WRONG = "wrong"


class ExerciseError(AssertionError):
    """Raised by an exercise's test to say what is wrong with an answer (without the answer)."""


def expect(condition: bool, message: str) -> None:
    """Fails the current check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseError(message)


def expect_tensor(value: Any, what: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Checks that ``value`` is a tensor (of ``shape`` when given) and returns it."""
    expect(isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if shape is not None:
        expect(tuple(value.shape) == tuple(shape), f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    expect(bool(torch.isfinite(value).all()), f"{what} contains NaN or infinite values")
    return value


def expect_close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Compares two tensors and, when they differ, says by how much (never the expected values)."""
    actual = expect_tensor(actual, what, tuple(expected.shape))
    actual = actual.to(expected.dtype)
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
        err = (actual - expected).abs()
        bad = int((err > atol + rtol * expected.abs()).sum())
        raise ExerciseError(
            f"{what} differs from the expected values at {bad} of {err.numel()} entries "
            f"(largest difference {err.max().item():.3g}, tolerance {atol:g})"
        )


@dataclass
class Exercise:
    """One exercise: a title, the reference implementation and a test of an answer.

    Attributes:
        title: shown in every message, e.g. "Exercise 2: the normalized Laplacian".
        reference: facelib's implementation, used when the exercise is not (yet) solved.
        test: called with the learner's function; raises :class:`ExerciseError` (or
            ``AssertionError``) with a message that says what is wrong, or returns None when correct.
        hint: a nudge, shown by :meth:`hint`, that does not give the answer away.
    """

    title: str
    reference: Callable[..., Any]
    test: Callable[[Callable[..., Any]], None]
    hint_text: str = ""
    status: Status | None = field(default=None, init=False)
    message: str = field(default="", init=False)

    def evaluate(self, answer: Callable[..., Any]) -> tuple[Status, str]:
        """Runs the test on ``answer`` and returns its status and a message, printing nothing."""
        if not callable(answer):
            return Status.WRONG, f"expected a function, got {type(answer).__name__}"
        try:
            self.test(answer)
        except NotImplementedError:
            return Status.NOT_ATTEMPTED, "not attempted yet"
        except AssertionError as err:
            return Status.WRONG, str(err) or "the answer does not pass the check"
        except Exception as err:  # the learner's code crashed: say how, keep the notebook going
            return Status.WRONG, f"your function raised {type(err).__name__}: {err}"
        return Status.CORRECT, "correct"

    def check(self, answer: Callable[..., Any]) -> Callable[..., Any]:
        """Checks ``answer``, prints the outcome and returns the function the notebook should use."""
        self.status, self.message = self.evaluate(answer)
        if self.status is Status.CORRECT:
            print(f"\u2713 {self.title}: correct")
            return answer
        if self.status is Status.NOT_ATTEMPTED:
            print(f"\u2026 {self.title}: not attempted yet (the function still raises NotImplementedError: replace that line "
                  "with your code). The notebook goes on with facelib's reference implementation.")
        else:
            print(f"\u2717 {self.title}: {self.message}\n  The notebook goes on with facelib's reference implementation for now.")
        return self.reference

    def hint(self) -> None:
        """Prints the hint."""
        print(self.hint_text or "No hint for this one: re-read the section above the exercise.")
