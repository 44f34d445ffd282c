"""The critic of Lin et al.'s adversarial loss: six convolutional layers, image -> one score.

Strided 4 x 4 convolutions halve the image five times (64, 128, 256, 512, 512 channels, LeakyReLU
0.2), and a sixth convolution whose kernel covers what is left (7 x 7 at 224 px) gives one
unbounded score per image. There is no batch normalisation: the gradient penalty of WGAN-GP is
defined per sample, and batch statistics would couple the samples (Gulrajani et al. 2017 use
layer normalisation or none; facelib uses none, like the official code's critic).
"""

from __future__ import annotations

import torch
from torch import nn

DOWNSAMPLING = 32
"""The five stride-2 layers divide the image size by 32."""


class Discriminator(nn.Module):
    """A WGAN critic for (B, H, W, 3) face images in [0, 1].

    Args:
        image_size: H = W, a multiple of 32 (224 as in the paper; 64 or 96 in fast mode).
        width: channels of the first layer (doubling up to 8 x width).
    """

    def __init__(self, image_size: int = 224, width: int = 64) -> None:
        super().__init__()
        if image_size % DOWNSAMPLING or image_size < DOWNSAMPLING:
            raise ValueError(f"image_size must be a positive multiple of {DOWNSAMPLING} (e.g. 64, 96, 224), got {image_size}")
        self.image_size = image_size
        channels = [3, width, 2 * width, 4 * width, 8 * width, 8 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(channels[-1], 1, kernel_size=image_size // DOWNSAMPLING))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) in [0, 1] -> (B,) scores (higher: more like a real photo)."""
        if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"the critic takes (B, {self.image_size}, {self.image_size}, 3) images, got {tuple(images.shape)}")
        return self.layers(images.permute(0, 3, 1, 2) * 2 - 1).flatten()
