"""Course tooling: exercise checks, the student-notebook generator and the notebook set-up.

Lesson notebooks use :func:`lesson_setup` in their first code cell and the ``Exercise`` objects of
``facelib.course.lessonNN`` in their check cells. ``python -m facelib.course build`` regenerates
``notebooks/`` from ``solutions/``.
"""

from facelib.course.check import Exercise, ExerciseError, Status, expect, expect_close, expect_tensor
from facelib.course.environment import EnvironmentReport, environment_report, lesson_setup

__all__ = [
    "EnvironmentReport",
    "Exercise",
    "ExerciseError",
    "Status",
    "environment_report",
    "expect",
    "expect_close",
    "expect_tensor",
    "lesson_setup",
]
