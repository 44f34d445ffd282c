"""Exercises of lesson 00 (welcome): one warm-up to show how exercises and checks work."""

from __future__ import annotations

import torch

from facelib.course.check import Exercise, expect, expect_close, expect_tensor


def image_to_tensor(image: torch.Tensor) -> torch.Tensor:
    """Converts an (H, W, 3) uint8 image to a (3, H, W) float32 tensor with values in [0, 1].

    This is the layout that torchvision's models and facelib's networks expect.
    """
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {tuple(image.shape)} {image.dtype}")
    return image.permute(2, 0, 1).to(torch.float32) / 255.0


def _test_image_to_tensor(answer) -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8, generator=generator)
    image[0, 0] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    out = answer(image)
    expect_tensor(out, "the result")
    expect(out.ndim == 3, f"the result should have 3 dimensions (C, H, W), it has {out.ndim}")
    expect(tuple(out.shape) != (5, 7, 3), "the channels should come first: (3, H, W), not (H, W, 3)")
    expect(tuple(out.shape) == (3, 5, 7), f"for a (5, 7, 3) image the result should be (3, 5, 7), got {tuple(out.shape)}")
    expect(out.dtype == torch.float32, f"the result should be float32, got {out.dtype}")
    expect(out.max() <= 1.0 and out.min() >= 0.0, "values should lie in [0, 1]: divide by the largest uint8 value")
    expect_close(out, image_to_tensor(image), "the result", atol=1e-6)


image_to_tensor_exercise = Exercise(
    title="Exercise 0.1: an image as a tensor",
    reference=image_to_tensor,
    test=_test_image_to_tensor,
    hint_text="Two steps: move the channel axis to the front (Tensor.permute), then convert to float and scale.",
)
