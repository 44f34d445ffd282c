"""A self-contained HTML viewer for one mesh under several per-vertex colourings (plotly).

The page embeds plotly.js itself (about 3.5 MB), so it opens offline, from an e-mail or a USB
stick, in any browser. One ``Mesh3d`` trace per colouring, all on the same geometry; buttons
switch which one is shown, and the camera stays where the user left it, so that two textures can be
compared from the same angle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch

from facelib.viz.mesh3d import mesh_figure


def viewer_figure(vertices: torch.Tensor | np.ndarray, triangles: torch.Tensor | np.ndarray,
                  colorings: dict[str, torch.Tensor | np.ndarray], title: str | None = None, height: int = 700) -> go.Figure:
    """A figure of one mesh with a button per colouring.

    Args:
        vertices: (V, 3) positions (+z towards the viewer, +y up).
        triangles: (F, 3) vertex indices.
        colorings: name -> (V, 3) RGB in [0, 1]; the first is shown first.
        title: the figure's title.
        height: its height in pixels.
    """
    if not colorings:
        raise ValueError("viewer_figure needs at least one colouring, e.g. {'albedo': colors}")
    names = list(colorings)
    figures = [mesh_figure(vertices, triangles, colors, title=title, height=height) for colors in colorings.values()]
    fig = figures[0]
    fig.data[0].name = names[0]
    for name, other in zip(names[1:], figures[1:]):
        trace = other.data[0]
        trace.name, trace.visible = name, False
        fig.add_trace(trace)
    if len(names) > 1:
        buttons = [dict(label=name, method="restyle", args=[{"visible": [j == i for j in range(len(names))]}])
                   for i, name in enumerate(names)]
        fig.update_layout(updatemenus=[dict(type="buttons", direction="right", x=0.5, xanchor="center", y=1.0, yanchor="bottom",
                                            buttons=buttons, showactive=True)],
                          margin=dict(l=0, r=0, t=70, b=0))
    # Keep the user's camera when switching colourings.
    fig.update_layout(uirevision="keep", scene_uirevision="keep")
    return fig


def write_viewer(path: str | Path, vertices: torch.Tensor | np.ndarray, triangles: torch.Tensor | np.ndarray,
                 colorings: dict[str, torch.Tensor | np.ndarray], title: str | None = None) -> Path:
    """Writes :func:`viewer_figure` as a standalone HTML page with plotly.js inline; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = viewer_figure(vertices, triangles, colorings, title)
    tmp = path.with_name(path.name + ".tmp")
    fig.write_html(tmp, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    tmp.replace(path)
    return path
