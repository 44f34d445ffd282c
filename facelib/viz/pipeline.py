"""The course's pipeline diagram, drawn in every lesson with that lesson's part highlighted."""

from __future__ import annotations

from typing import NamedTuple

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch


class Stage(NamedTuple):
    """One box of the diagram: its text, the lessons that teach it, and its place (column, row; row 0 on top)."""

    label: str
    lessons: tuple[int, ...]
    column: float
    row: int


# The data flow of Lin et al. (CVPR 2020): the main line on top, the two paths that feed the texture
# GCNs from the photo itself below it (the identity embedding and the colours at the vertices).
STAGES: list[Stage] = [
    Stage("photo, aligned\n224 px (fast: 128)", (6,), 0, 0),
    Stage("regressor CNN\n-> 257 coefficients", (5, 6), 1, 0),
    Stage("3DMM (PCA) + fit\nshape S, albedo T", (1, 3, 6), 2, 0),
    Stage("texture GCNs: Refiner,\nDecoder, CombineNet -> T'\n(12,414 vertices)", (2, 5), 3, 0),
    Stage("differentiable\nrenderer -> R'", (3,), 4, 0),
    Stage("losses: pixel, identity,\nvertex, adversarial", (4, 5), 5, 0),
    Stage("identity network\nFaceNet or dlib -> f(I)", (4,), 3.75, 1),
    Stage("T_p: the photo at the\nprojected vertices, de-lit", (3, 6), 1.9, 1),
]
ARROWS: list[tuple[int, int]] = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 6), (6, 3), (6, 5), (0, 7), (2, 7), (7, 3)]
"""(from, to) indices into :data:`STAGES`."""
LESSONS = {
    0: "00 welcome", 1: "01 3DMM and PCA", 2: "02 mesh graphs and GCNs", 3: "03 differentiable rendering",
    4: "04 losses", 5: "05 full GPU training", 6: "06 reconstruct your own photo",
}
_WIDTH, _HEIGHT, _STEP, _ROWS = 1.5, 0.62, 1.8, (1.55, 0.45)


def _centre(stage: Stage) -> tuple[float, float]:
    return stage.column * _STEP + 0.1 + _WIDTH / 2, _ROWS[stage.row]


def pipeline_figure(lesson: int | None = None) -> Figure:
    """The pipeline as boxes and arrows; the boxes that ``lesson`` teaches are highlighted."""
    fig, ax = plt.subplots(figsize=(11, 2.9))
    ax.set_xlim(0, 6 * _STEP)
    ax.set_ylim(0, 2.2)
    ax.axis("off")
    for stage in STAGES:
        x, y = _centre(stage)
        on = lesson is not None and lesson in stage.lessons
        ax.add_patch(FancyBboxPatch((x - _WIDTH / 2, y - _HEIGHT / 2), _WIDTH, _HEIGHT, boxstyle="round,pad=0.03",
                                    facecolor="#ffcc66" if on else "#eef2f7",
                                    edgecolor="#cc6600" if on else "#8899aa", linewidth=2 if on else 1))
        ax.text(x, y, stage.label, ha="center", va="center", fontsize=8, weight="bold" if on else "normal")
    for start, end in ARROWS:
        (x0, y0), (x1, y1) = _centre(STAGES[start]), _centre(STAGES[end])
        if y0 == y1:  # along a row: from the right edge to the left edge
            tail, head = (x0 + _WIDTH / 2 + 0.04, y0), (x1 - _WIDTH / 2 - 0.04, y1)
        else:  # between rows: from the bottom or top edge
            sign = -1 if y1 < y0 else 1
            tail, head = (x0, y0 + sign * (_HEIGHT / 2 + 0.04)), (x1, y1 - sign * (_HEIGHT / 2 + 0.04))
        ax.annotate("", xy=head, xytext=tail, arrowprops=dict(arrowstyle="->", color="#556677", shrinkA=0, shrinkB=0))
    title = LESSONS.get(lesson, "") if lesson is not None else ""
    ax.text(0.1, 2.08, f"Lin et al. 2020, the pipeline{' | this lesson: ' + title if title else ''}", fontsize=10)
    fig.tight_layout()
    return fig


def show_pipeline(lesson: int | None = None) -> None:
    """Shows :func:`pipeline_figure` (inline in a notebook)."""
    fig = pipeline_figure(lesson)
    plt.show()
    plt.close(fig)
