"""Reading photos robustly: any file PIL can open becomes an upright 8-bit RGB image, or a clear error.

Handled on the way: EXIF orientation (phones store portraits sideways and a flag), grayscale,
palette, RGBA/LA (composited on white, since a transparent background has no colour), CMYK,
16-bit and float images (rescaled to 8 bits). Refused with a message that says what is wrong:
a missing path, a folder, a file that is not an image, a truncated file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """A file that cannot be used as a photo; the message says why and what to do."""


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: stretch the used range to 8 bits.
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        array = (array - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(array)
        image = Image.fromarray(array.round().astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def to_upright_rgb(image: Image.Image) -> Image.Image:
    """An already opened image as upright 8-bit RGB (EXIF orientation, alpha on white, 16-bit rescaled)."""
    return _to_rgb(ImageOps.exif_transpose(image))


def load_rgb(path: str | Path) -> Image.Image:
    """Opens an image file as upright 8-bit RGB.

    Args:
        path: a JPEG, PNG, TIFF, WebP, BMP... file.

    Returns:
        A fully loaded ``PIL.Image`` in mode ``"RGB"``.

    Raises:
        ImageError: the path is missing, is a folder, is not an image, or is truncated.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give an image file (or use PhotoFolder for folders)")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: the image is too large for PIL's safety limit ({err}); downscale it first") from err
    except PermissionError as err:
        raise ImageError(f"{path}: no permission to read it") from err
    except UnidentifiedImageError as err:
        raise ImageError(f"{path}: not an image that PIL can read (JPEG, PNG, TIFF, WebP, BMP...)") from err
    except (OSError, SyntaxError) as err:
        raise ImageError(f"{path}: the image file is damaged or truncated ({err}); re-download or re-export it") from err


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """(H, W, 3) float tensor in [0, 1] from an RGB image."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)


def load_image_tensor(path: str | Path) -> torch.Tensor:
    """:func:`load_rgb` as an (H, W, 3) float tensor in [0, 1]."""
    return image_to_tensor(load_rgb(path))
