"""The TextureGCN drawn level by level: each layer a box at its mesh level, with its output shape.

Takes plain records, ``(branch, layer, level, shape)``, as :meth:`facelib.gcn.TextureGCN.layer_shapes`
returns them, so this module stays a leaf of the package.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

BRANCH_COLOURS = {"Refiner": "#cfe2f3", "Decoder": "#d9ead3", "CombineNet": "#fce5cd"}


def network_figure(layers: Sequence[tuple[str, str, int, tuple[int, ...]]], num_vertices: Sequence[int],
                   skips: bool = True, inputs: dict[str, str] | None = None) -> plt.Figure:
    """Draws the branches side by side: x is the order of the layers, y the mesh level (the face mesh on top).

    Args:
        layers: (branch, layer, level, output shape) in call order.
        num_vertices: vertices per mesh level (for the level labels).
        skips: draw the Refiner's skip connections (encoder output at a level -> decoder input there).
        inputs: per branch, a label of what it reads (drawn above its first layer).

    Returns:
        The figure.
    """
    branches = list(dict.fromkeys(branch for branch, *_ in layers))
    if not branches:
        raise ValueError("no layers to draw")
    counts = [sum(1 for b, *_ in layers if b == branch) for branch in branches]
    fig, axes = plt.subplots(1, len(branches), figsize=(1.6 + 0.95 * sum(counts), 1.5 + 0.75 * len(num_vertices)),
                             gridspec_kw={"width_ratios": [max(c, 1.6) for c in counts]}, squeeze=False)
    for ax, branch in zip(axes[0], branches):
        rows = [(layer, level, shape) for b, layer, level, shape in layers if b == branch]
        points = []
        for x, (layer, level, shape) in enumerate(rows):
            ax.add_patch(FancyBboxPatch((x - 0.42, -level - 0.3), 0.84, 0.6, boxstyle="round,pad=0.02",
                                        fc=BRANCH_COLOURS.get(branch, "#eeeeee"), ec="0.3", lw=0.8))
            ax.text(x, -level + 0.1, layer, ha="center", va="center", fontsize=7.5, weight="bold")
            ax.text(x, -level - 0.13, "(" + ", ".join(f"{n:,}" for n in shape) + ")", ha="center", va="center", fontsize=6)
            points.append((x, -level))
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            ax.annotate("", xy=(x1 - 0.42 if y0 == y1 else x1, y1 + (0.3 if y1 < y0 else -0.3 if y1 > y0 else 0)),
                        xytext=(x0 + 0.42 if y0 == y1 else x0, y0 - (0.3 if y1 < y0 else -0.3 if y1 > y0 else 0)),
                        arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 0.9})
        if branch == "Refiner" and skips:
            encoders = {level: x for x, (layer, level, _) in enumerate(rows) if layer == "encoder"}
            for x, (layer, level, _) in enumerate(rows):
                if layer == "decoder" and level in encoders:
                    ax.annotate("", xy=(x - 0.2, -level + 0.3), xytext=(encoders[level] + 0.2, -level + 0.3),
                                arrowprops={"arrowstyle": "->", "color": "C1", "lw": 0.8, "ls": "--",
                                            "connectionstyle": "arc3,rad=-0.1"})
        if inputs and branch in inputs:
            ax.text(-0.42, 1.45, inputs[branch], ha="left", va="center", fontsize=7, color="0.25")
        ax.set_xlim(-0.6, max(len(rows), 1.6) - 0.4)
        ax.set_ylim(-len(num_vertices) + 0.4, 1.7)
        ax.set_yticks([-level for level in range(len(num_vertices))])
        ax.set_yticklabels([f"level {level}\n{v:,} vertices" for level, v in enumerate(num_vertices)], fontsize=7)
        ax.tick_params(axis="y", length=0)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title(branch, fontsize=10)
    for ax in axes[0][1:]:
        ax.set_yticklabels([])
    fig.tight_layout()
    return fig
