"""The overlay sheet of a reconstruction: the photo and each rendering pasted on it, labelled, with close-ups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from facelib.files import atomic_open


def _label(panel: Image.Image, label: str) -> Image.Image:
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=max(12, panel.height // 28))
    box = draw.textbbox((6, 4), label, font=font)
    draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
    draw.text((6, 4), label, fill=(255, 255, 255), font=font)
    return panel


def _fit_side(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS) if scale != 1 else image


def write_overlay(path: Path, photo: torch.Tensor, panels: dict[str, torch.Tensor], max_side: int,
                  zoom: tuple[float, float, float, float] | None = None) -> Path:
    """Writes the photo and each pasted rendering side by side, labelled, as one PNG.

    Args:
        path: the PNG to write.
        photo: (H, W, 3) the photo. panels: label -> (H, W, 3) the photo with a rendering pasted on.
        max_side: the longest side of each panel (larger photos are scaled down, smaller ones kept).
        zoom: (x0, y0, x1, y1) a box in photo pixels (the face): adds a second row of close-ups.
    """
    images = {"photo": photo, **panels}
    pictures = [Image.fromarray((image.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)) for image in images.values()]
    rows = [[_label(_fit_side(p, min(max_side, max(p.size))), label) for p, label in zip(pictures, images)]]
    if zoom is not None:
        width = rows[0][0].width
        rows.append([_label(_fit_side(p.crop(tuple(round(v) for v in zoom)), width), f"{label}, close-up")
                     for p, label in zip(pictures, images)])
    gap = 6
    widths = [sum(i.width for i in row) + gap * (len(row) - 1) for row in rows]
    heights = [max(i.height for i in row) for row in rows]
    sheet = Image.new("RGB", (max(widths), sum(heights) + gap * (len(rows) - 1)), (255, 255, 255))
    y = 0
    for row, height in zip(rows, heights):
        x = 0
        for image in row:
            sheet.paste(image, (x, y))
            x += image.width + gap
        y += height + gap
    with atomic_open(path) as handle:
        sheet.save(handle, format="PNG")
    return path
