"""Bar charts the lessons draw from numbers: distances against a threshold, a loss's weighted terms
(negative ones included), and changes against a baseline. Each returns its figure; the notebook shows it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def distance_bars(distances: Mapping[str, float], threshold: float, title: str,
                  below: str = "same person below this") -> Figure:
    """Horizontal bars of distances, green under ``threshold`` and red above, with the threshold drawn.

    Args:
        distances: label -> distance (e.g. identity-descriptor distances of image pairs).
        threshold: the decision threshold (dlib's 0.6).
        title: the chart's title. below: the threshold line's legend text.
    """
    names, values = list(distances), [float(v) for v in distances.values()]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 0.6))
    ax.barh(names, values, color=["C2" if v < threshold else "C3" for v in values])
    ax.axvline(threshold, color="k", ls="--", label=below)
    for i, v in enumerate(values):
        ax.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="descriptor distance", title=title, xlim=(0, max(values + [threshold]) + 0.12))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def stacked_terms(rows: Mapping[str, Mapping[str, float]], totals: Mapping[str, float], xlabel: str) -> Figure:
    """A diverging stacked bar per row: each term's weighted contribution, positive ones to the right of
    0 and negative ones to the left, so that every bar's length is its term's share; the total as a marker.

    Args:
        rows: row label -> {term name: weighted contribution} (the same terms in every row).
        totals: row label -> the total the terms add up to (checked: a ValueError when they do not).
        xlabel: the x axis' label.
    """
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.0))
    extent = [0.0, 0.0]
    for i, (label, parts) in enumerate(rows.items()):
        total = float(totals[label])
        if abs(sum(parts.values()) - total) > 1e-4 * max(1.0, abs(total)):
            raise ValueError(f"the terms of {label!r} add up to {sum(parts.values()):.6g}, not to its total {total:.6g}")
        right = left = 0.0
        for j, (name, value) in enumerate(parts.items()):
            start = right if value >= 0 else left + value
            ax.barh(i, abs(value), left=start, color=f"C{j}", label=name if i == 0 else None)
            right, left = (right + value, left) if value >= 0 else (right, left + value)
        ax.plot([total], [i], "kD", ms=5, label="total" if i == 0 else None)
        ax.text(right * 1.02 + 1e-3, i, f"L = {total:.3f}", va="center", fontsize=8)
        extent = [min(extent[0], left), max(extent[1], right)]
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlim(extent[0] * 1.1 - 1e-3, extent[1] * 1.25 + 1e-3)
    ax.set(yticks=list(range(len(rows))), yticklabels=list(rows), xlabel=xlabel)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def change_bars(rows: Mapping[str, Mapping[str, float]], series: Sequence[tuple[str, str]], xlabel: str,
                limit: float = 40.0) -> Figure:
    """Grouped horizontal bars of changes (e.g. % of an error against a baseline), one group per row.

    Args:
        rows: row label -> {series key: change}.
        series: (key, legend label) of each bar in a group.
        xlabel: the x axis' label.
        limit: the axis is cut at +-limit so that small changes stay readable; a bar cut there is labelled with its length.
    """
    fig, ax = plt.subplots(figsize=(8, 0.8 * len(rows) + 0.6))
    height = 0.76 / len(series)
    for j, (key, label) in enumerate(series):
        values = [float(row[key]) for row in rows.values()]
        ax.barh([k + height * j for k in range(len(rows))], values, height=height * 0.95, label=label)
        for k, v in enumerate(values):
            if abs(v) > limit:
                ax.text(limit - 1 if v > 0 else -limit + 1, k + height * j, f"{v:+.0f} %", ha="right" if v > 0 else "left",
                        va="center", fontsize=8, color="w")
    ax.axvline(0, color="k", lw=0.8)
    ax.set(yticks=[k + height * (len(series) - 1) / 2 for k in range(len(rows))], yticklabels=list(rows), xlabel=xlabel,
           xlim=(-limit, limit))
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    return fig
