"""The course's pipeline diagram, drawn in every lesson with that lesson's part highlighted."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

# (label, lessons that teach it). The order is the data flow of Lin et al. (CVPR 2020).
STAGES: list[tuple[str, tuple[int, ...]]] = [
    ("photo\n(aligned 224x224)", (6,)),
    ("regressor\nCNN -> 257 coeffs", (5, 6)),
    ("3DMM (PCA)\nshape + albedo", (1,)),
    ("texture GCNs\nRefiner+Decoder", (2, 5)),
    ("differentiable\nrenderer", (3,)),
    ("losses: pixel, id\nvertex, adversarial", (4, 5)),
]
LESSONS = {
    0: "00 welcome", 1: "01 3DMM and PCA", 2: "02 mesh graphs and GCNs", 3: "03 differentiable rendering",
    4: "04 losses", 5: "05 full GPU training", 6: "06 reconstruct your own photo",
}


def pipeline_figure(lesson: int | None = None) -> Figure:
    """The pipeline as a row of boxes; the boxes that ``lesson`` teaches are highlighted."""
    fig, ax = plt.subplots(figsize=(11, 1.7))
    ax.set_xlim(0, len(STAGES) * 1.8)
    ax.set_ylim(0, 1.25)
    ax.axis("off")
    for index, (label, taught_in) in enumerate(STAGES):
        x = index * 1.8 + 0.1
        on = lesson is not None and lesson in taught_in
        ax.add_patch(FancyBboxPatch((x, 0.25), 1.45, 0.7, boxstyle="round,pad=0.03",
                                    facecolor="#ffcc66" if on else "#eef2f7",
                                    edgecolor="#cc6600" if on else "#8899aa", linewidth=2 if on else 1))
        ax.text(x + 0.725, 0.6, label, ha="center", va="center", fontsize=8.5, weight="bold" if on else "normal")
        if index < len(STAGES) - 1:
            ax.annotate("", xy=(x + 1.72, 0.6), xytext=(x + 1.5, 0.6), arrowprops=dict(arrowstyle="->", color="#556677"))
    title = LESSONS.get(lesson, "") if lesson is not None else ""
    ax.text(0.1, 1.12, f"Lin et al. 2020, the pipeline{' | this lesson: ' + title if title else ''}", fontsize=10)
    fig.tight_layout()
    return fig


def show_pipeline(lesson: int | None = None) -> None:
    """Shows :func:`pipeline_figure` (inline in a notebook)."""
    fig = pipeline_figure(lesson)
    plt.show()
    plt.close(fig)
