"""A gallery of random faces from a morphable model (the model's visual check, and the demo)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

import torch

from facelib.morphable.model import MorphableModel
from facelib.render import FaceRenderer
from facelib.viz import image_grid


def random_faces(model: MorphableModel, n: int = 16, seed: int = 0, limit: float = 2.0, size: int = 224, landmarks: bool = True):
    """Renders ``n`` random faces (identity, expression and albedo drawn from N(0, 1), clipped to
    +-``limit`` standard deviations) under varied yaw and lighting; returns a matplotlib figure."""
    generator = torch.Generator().manual_seed(seed)
    coeffs = {k: v.clamp(-limit, limit) for k, v in model.sample(n, generator).items()}
    shape = model.shape(coeffs["id"], coeffs["exp"])
    albedo = model.albedo(coeffs["tex"]).clamp(0, 1)
    angles = torch.zeros(n, 3)
    angles[:, 1] = (torch.rand(n, generator=generator) - 0.5) * 1.0
    angles[:, 0] = (torch.rand(n, generator=generator) - 0.5) * 0.3
    gamma = torch.zeros(n, 3, 9)
    gamma[:, :, 1:4] = (torch.rand(n, 1, 3, generator=generator) - 0.5) * 0.5
    gamma[:, :, 2] += 0.15
    with torch.no_grad():
        out = FaceRenderer.for_model(model, size).render(shape, albedo, angles, gamma=gamma.view(n, 27))
    fig = image_grid(out.image.clamp(0, 1), ncols=min(n, 8), size=2.2)
    if landmarks and out.landmarks is not None:
        for ax, points in zip(fig.axes, out.landmarks):
            ax.scatter(points[:, 0], points[:, 1], s=3, c="lime")
    return fig


def write_gallery(path: str | Path, model: MorphableModel, **kwargs) -> Path:
    """Writes :func:`random_faces` to an image file and returns its path."""
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = random_faces(model, **kwargs)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
