"""The backgrounds of synthetic faces: procedural fields, and crops of offline images (the course's two
photos with their faces kept out, matplotlib's sample pictures and elevation maps drawn as terrain).

Which background an item gets is part of the benchmark's definition (:func:`facelib.data.benchmark`),
so every offline image is required (:func:`background_images`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.colors import LightSource
from PIL import Image

from facelib.config import PHOTOS
from facelib.data.images import image_to_tensor, load_rgb

FACE_BOXES = {"grace_hopper": (110, 40, 420, 420), "astronaut": (135, 5, 315, 230)}
"""Where the faces of the two course photos are (x0, y0, x1, y1 in pixels: MTCNN's boxes widened
by a third or more): background crops stay clear of them, so no second face enters an image."""


@dataclass
class BackgroundImage:
    """An offline image to crop backgrounds from.

    Attributes:
        name: where it comes from.
        pixels: (H, W, 4) RGBA in [0, 1] (alpha 1 for opaque images; transparency gets a random colour).
        keep_out: (x0, y0, x1, y1) a box that crops must not touch (a face), or None.
    """

    name: str
    pixels: torch.Tensor
    keep_out: tuple[int, int, int, int] | None = None


def _rgba(array: np.ndarray) -> torch.Tensor:
    array = np.asarray(array, dtype=np.float32)
    if array.max() > 1.0:
        array = array / 255.0
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, -1)
    if array.shape[-1] == 3:
        array = np.concatenate([array, np.ones_like(array[..., :1])], -1)
    return torch.from_numpy(np.ascontiguousarray(array[..., :4]))


@functools.lru_cache(maxsize=1)
def background_images() -> tuple[BackgroundImage, ...]:
    """The offline images that backgrounds are cropped from (loaded once; every one is required).

    The course's two photos (with their faces kept out), matplotlib's gift-box picture and logo,
    and its two elevation maps (Jacksboro fault, topography and bathymetry) drawn as shaded terrain,
    in that order. The list and its order decide every synthetic item's background, so none may be
    missing: the benchmark (:func:`benchmark`) must be the same on every machine.

    Raises:
        FileNotFoundError: one of the files is missing; the message names it and says how to restore it.
    """

    def require(path: Path, what: str, remedy: str) -> Path:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing ({what}). Synthetic faces crop backgrounds from it; without it every item's "
                f"background, and so the fixed benchmark (facelib.data.benchmark), would differ from everyone "
                f"else's, silently. {remedy}")
        return path

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    pictures, terrains = ("Minduka_Present_Blue_Pack.png", "logo2.png"), ("jacksboro_fault_dem.npz", "topobathy.npz")
    # All files are checked before any is read: a missing one fails at once, whatever its place.
    for name, path in PHOTOS.items():
        require(Path(path), f"the course photo {name!r}", "Restore data/photos/ from the repository "
                "(git checkout -- data/photos), or point FACELIB_DATA at a folder that has photos/.")
    for name in pictures + terrains:
        require(sample / name, f"matplotlib {matplotlib.__version__}'s sample data file {name}",
                "Reinstall matplotlib at the version requirements.txt pins, with its sample data (some system packages "
                f"leave it out): pip install --force-reinstall --no-deps matplotlib=={matplotlib.__version__}")

    out = [BackgroundImage(name, _rgba(image_to_tensor(load_rgb(path)).numpy()), FACE_BOXES.get(name))
           for name, path in PHOTOS.items()]
    for name in pictures:
        with Image.open(sample / name) as image:
            out.append(BackgroundImage(name, _rgba(np.asarray(image.convert("RGBA")))))
    light = LightSource(azdeg=315, altdeg=40)
    for name, key, cmap in ((terrains[0], "elevation", "gist_earth"), (terrains[1], "topo", "terrain")):
        with np.load(sample / name) as data:
            elevation = np.asarray(data[key], dtype=np.float64)
        shaded = light.shade(elevation, cmap=colormaps[cmap], blend_mode="soft", vert_exag=0.05 if key == "elevation" else 0.01)
        out.append(BackgroundImage(name, _rgba(shaded)))
    return tuple(out)


def procedural_background(size: int, generator: torch.Generator) -> torch.Tensor:
    """A random gradient of two muted colours, low- and mid-frequency noise and a few soft blobs.

    Returns:
        (size, size, 3) in [0, 1].
    """
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    # Everything here is smooth: draw it at a quarter of the size and upsample once (16 times
    # fewer pixels to compute, which is most of the cost of a synthetic item on a CPU).
    low = max(8, size // 4)
    grey = 0.15 + 0.7 * rand(2, 1)
    colours = (grey + 0.6 * rand(1, 1) * (rand(2, 3) - grey)).clamp(0, 1)  # muted: random, partial saturation
    angle = rand(1) * 2 * math.pi
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, low), torch.linspace(-1, 1, low), indexing="ij")
    t = ((xs * angle.cos() + ys * angle.sin()) * 0.5 + 0.5).clamp(0, 1)[..., None]
    image = colours[0] * (1 - t) + colours[1] * t
    for _ in range(int(rand(1) * 4)):
        centre, radii, colour = rand(2) * 2 - 1, 0.1 + 0.5 * rand(2), 0.1 + 0.8 * rand(3)
        blob = torch.exp(-(((xs - centre[0]) / radii[0]) ** 2 + ((ys - centre[1]) / radii[1]) ** 2) ** 2)[..., None]
        image = image + 0.6 * blob * (colour - image)
    image = image.permute(2, 0, 1)[None] + F.interpolate(torch.randn(1, 3, 4, 4, generator=generator) * 0.08, size=(low, low),
                                                         mode="bicubic", align_corners=False)
    image = image + F.interpolate(torch.randn(1, 1, 12, 12, generator=generator) * 0.04, size=(low, low), mode="bilinear",
                                  align_corners=False)
    image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)[0]
    return image.clamp(0, 1).permute(1, 2, 0)


def _overlaps(box: tuple[float, float, float, float], keep_out: tuple[int, int, int, int] | None) -> bool:
    if keep_out is None:
        return False
    x0, y0, x1, y1 = box
    a0, b0, a1, b1 = keep_out
    return x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1


def image_background(source: BackgroundImage, size: int, generator: torch.Generator) -> torch.Tensor | None:
    """A random square crop of ``source``, flipped, resized, defocused and recoloured a little.

    Returns:
        (size, size, 3) in [0, 1], or None when no crop clear of ``source.keep_out`` was found.
    """
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    h, w = source.pixels.shape[:2]
    for _ in range(20):
        side = int(min(h, w) * (0.2 + 0.6 * float(rand(1))))
        x0, y0 = int(float(rand(1)) * (w - side)), int(float(rand(1)) * (h - side))
        if not _overlaps((x0, y0, x0 + side, y0 + side), source.keep_out):
            break
    else:
        return None
    crop = source.pixels[y0:y0 + side, x0:x0 + side]
    # Transparent parts (the gift box, the logo) sit on a random colour.
    matte = rand(3)
    crop = crop[..., :3] * crop[..., 3:] + matte * (1 - crop[..., 3:])
    if float(rand(1)) < 0.5:
        crop = crop.flip(1)
    # Portraits have shallow depth of field: backgrounds are out of focus, some more than others.
    # Resampling through a smaller image blurs by about (size / small) pixels, at no real cost.
    small = max(8, round(size / (1 + 2.5 * float(rand(1)))))
    image = F.interpolate(crop.permute(2, 0, 1)[None], size=(small, small), mode="bilinear", align_corners=False,
                          antialias=side > small)
    if small < size:
        image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
    image = image[0]
    gain, contrast = 0.7 + 0.5 * float(rand(1)), 0.7 + 0.4 * float(rand(1))
    mean = image.mean()
    return ((image - mean) * contrast + mean * gain).clamp(0, 1).permute(1, 2, 0)


def random_background(size: int, generator: torch.Generator, photo_share: float = 0.5) -> torch.Tensor:
    """A procedural background, or (with probability ``photo_share``) a crop of an offline image.

    Returns:
        (size, size, 3) in [0, 1].
    """
    sources = background_images()
    if sources and float(torch.rand(1, generator=generator)) < photo_share:
        source = sources[int(torch.randint(len(sources), (1,), generator=generator))]
        image = image_background(source, size, generator)
        if image is not None:
            return image
    return procedural_background(size, generator)
