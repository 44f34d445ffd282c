"""Interactive 3D mesh views with plotly (``go.Mesh3d`` with per-vertex colours)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def mesh_figure(
    vertices: torch.Tensor | np.ndarray,
    triangles: torch.Tensor | np.ndarray,
    colors: torch.Tensor | np.ndarray | None = None,
    title: str | None = None,
    height: int = 450,
) -> go.Figure:
    """A plotly figure of a triangle mesh, viewed from the front (+z towards the viewer).

    Args:
        vertices: (V, 3) positions.
        triangles: (F, 3) vertex indices.
        colors: optional (V, 3) RGB in [0, 1] per vertex, or (V,) scalars drawn with a colour scale.
        title: figure title.
        height: figure height in pixels.

    The figure renders in JupyterLab, Colab and VS Code; headless runs (CI) build it without a
    browser, and stored notebooks keep a note in its place.
    """
    v, f = _numpy(vertices).astype(np.float32), _numpy(triangles).astype(np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"triangles must be (F, 3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"triangle indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    kwargs: dict = {}
    if colors is not None:
        c = _numpy(colors).astype(np.float32)
        if c.shape == (len(v), 3):
            rgb = (np.clip(c, 0, 1) * 255).astype(np.uint8)
            kwargs["vertexcolor"] = [f"rgb({r},{g},{b})" for r, g, b in rgb]
        elif c.shape == (len(v),):
            kwargs.update(intensity=c, colorscale="RdBu", showscale=True)
        else:
            raise ValueError(f"colors must be (V, 3) or (V,), got {c.shape} for V={len(v)}")
    else:
        kwargs["color"] = "lightgray"
    mesh = go.Mesh3d(
        x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
        flatshading=False, lighting=dict(ambient=0.55, diffuse=0.6, specular=0.1), **kwargs,
    )
    fig = go.Figure(mesh)
    fig.update_layout(
        title=title, height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0),
        scene=dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False,
                   camera=dict(eye=dict(x=0, y=0, z=2.0), up=dict(x=0, y=1, z=0))),
    )
    return fig
