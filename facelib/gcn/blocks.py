"""Graph convolution blocks: a residual Chebyshev block and a plain one, both with ELU.

As in the official code of Lin et al. there is no normalisation layer, and ELU is the activation
(its ``b1relu`` adds a per-channel bias, then applies ``tf.nn.elu``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facelib.gcn.chebconv import ChebConv


class ChebResBlock(nn.Module):
    """Residual block of two Chebyshev convolutions (our port of the official ``cheb_res_block``).

        h = ELU(conv1(x)),   y = ELU(conv2(h) + shortcut(x))

    where shortcut is the identity when C_in = C_out, else a per-vertex linear map without bias
    (a K = 1 Chebyshev convolution, as the official code). Both convolutions carry a bias (the
    official code adds it inside its bias-and-ELU step, which is the same).

    Args:
        in_channels, out_channels: C_in, C_out.
        K: Chebyshev order of the two convolutions.
        activate_output: apply the final ELU (the official code always does, also on the 3-channel
            outputs of the Refiner and Decoder).
    """

    def __init__(self, in_channels: int, out_channels: int, K: int = 6, activate_output: bool = True) -> None:
        super().__init__()
        self.conv1 = ChebConv(in_channels, out_channels, K)
        self.conv2 = ChebConv(out_channels, out_channels, K)
        self.shortcut = ChebConv(in_channels, out_channels, K=1, bias=False) if in_channels != out_channels else None
        self.activate_output = activate_output

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """(B, V, C_in) and the level's (V, V) Laplacian -> (B, V, C_out)."""
        h = F.elu(self.conv1(x, laplacian))
        skip = x if self.shortcut is None else self.shortcut(x, None)
        y = self.conv2(h, laplacian) + skip
        return F.elu(y) if self.activate_output else y


class ChebBlock(nn.Module):
    """One Chebyshev convolution with bias, then ELU (the official code's non-residual model).

    Args:
        in_channels, out_channels: C_in, C_out.
        K: Chebyshev order.
        activate_output: apply the ELU.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int = 6, activate_output: bool = True) -> None:
        super().__init__()
        self.conv = ChebConv(in_channels, out_channels, K)
        self.activate_output = activate_output

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """(B, V, C_in) and the level's (V, V) Laplacian -> (B, V, C_out)."""
        y = self.conv(x, laplacian)
        return F.elu(y) if self.activate_output else y


BLOCKS: dict[str, type[nn.Module]] = {"resnet": ChebResBlock, "plain": ChebBlock}
"""Block types by the name a :class:`facelib.gcn.texture.TextureGCNConfig` uses."""
