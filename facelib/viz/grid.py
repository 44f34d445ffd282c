"""Image grids with matplotlib: the picture most lessons end with."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

ImageLike = "torch.Tensor | np.ndarray"


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Converts one image to a float (H, W, 3) or (H, W) array in [0, 1] for matplotlib.

    Accepts (H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}; uint8 is scaled by 1/255.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.transpose(array, (1, 2, 0))
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H, W), (H, W, C) or (C, H, W), got {array.shape}")
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _as_list(images: torch.Tensor | np.ndarray | Sequence) -> list:
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        return [images[i] for i in range(images.shape[0])]
    if isinstance(images, (torch.Tensor, np.ndarray)):
        return [images]
    return list(images)


def image_grid(
    images: torch.Tensor | np.ndarray | Sequence,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 2.5,
    suptitle: str | None = None,
    cmap: str = "viridis",
) -> Figure:
    """Draws images in a grid and returns the figure.

    Args:
        images: a batch (B, H, W, C) or (B, C, H, W), or a list of single images (any layout that
            :func:`to_numpy_image` takes). Single-channel images use ``cmap``.
        titles: one title per image.
        ncols: columns (default: up to 8, as square as possible).
        size: inches per panel.
        suptitle: a title over the whole grid.
    """
    items = _as_list(images)
    if not items:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"{len(titles)} titles for {len(items)} images")
    n = len(items)
    ncols = ncols or min(n, 8, max(1, int(np.ceil(np.sqrt(n)))) if n > 4 else n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        array = to_numpy_image(items[index])
        ax.imshow(array, cmap=cmap if array.ndim == 2 else None)
        if titles is not None:
            ax.set_title(titles[index], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def save_grid(path: str, *args, **kwargs) -> str:
    """Draws :func:`image_grid` into an image file and returns its path."""
    fig = image_grid(*args, **kwargs)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def show_photo(path: str | Path, max_side: int = 900, quality: int = 85):
    """Shows a photo-like image file in a notebook as a JPEG, at most ``max_side`` pixels on a side.

    A notebook stores what it shows: a photograph as a PNG (what matplotlib writes) weighs ten times
    its JPEG, enough for the stored course to drop it (:func:`facelib.course.student.trim_outputs`).

    Returns:
        The displayed (resized) ``PIL.Image``.
    """
    import io

    from IPython.display import Image as IPImage, display
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image to show")
    image = Image.open(path).convert("RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    display(IPImage(data=buffer.getvalue(), format="jpeg"))
    return image


def show_as_jpeg(fig=None, quality: int = 85) -> None:
    """Shows a matplotlib figure (default: the current one) in a notebook as a JPEG, and closes it.

    For figures of photos and renderings, which a notebook would otherwise store as PNGs several
    times larger (see :func:`show_photo`); plots of lines and text should stay PNGs.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image as IPImage, display

    fig = fig if fig is not None else plt.gcf()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", pil_kwargs={"quality": quality}, bbox_inches="tight")
    plt.close(fig)
    display(IPImage(data=buffer.getvalue(), format="jpeg"))
