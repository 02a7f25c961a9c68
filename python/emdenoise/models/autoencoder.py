"""Ede's denoising autoencoders: 160x160 crops -> 20x20xd latents (seed 002, sec. 2, fig. 1).

Encoder: a 3x3 convolution at full size, three stride-2 3x3 convolutions (160 -> 80 ->
40 -> 20) and a 1x1 convolution to ``d`` latent features (64:d compression for one input
channel). Decoder: a 1x1 convolution from the latent, three stride-2 transposed
convolutions (20 -> 160), a 3x3 convolution to one channel.

Each convolutional layer is followed by batch normalisation then ReLU, except for the
last two layers (sec. 2.1): the second to last (the 3x3 output convolution) is not batch
normalised, and the last layer has no weights, biases, batch norm or activation -- here
the identity that hands the output on (the paper's output is unactivated). The latent
layer follows the general rule (BN + ReLU), so latents are non-negative.

Inputs are normalised per crop by subtracting the minimum and dividing by the mean of
the result (sec. 2.2; the engine's ``min-mean`` normalisation, which it inverts on the
way out). The network is fully convolutional: any side that is a multiple of 8 works;
160x160 crops give 20x20 latents.
"""

from __future__ import annotations

import torch
from torch import nn

#: Latent depths of seed 002, Table 1.
LATENT_DEPTHS = (1, 2, 4, 8, 16, 32, 64)


def _conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Image (N, 1, H, W) -> latent (N, d, H/8, W/8) (seed 002, fig. 1, left half)."""

    multiple_of = 8

    def __init__(self, depth: int = 16, width: int = 64):
        super().__init__()
        w = int(width)
        self.layers = nn.Sequential(_conv(1, w // 2), _conv(w // 2, w, stride=2), _conv(w, w, stride=2),
                                    _conv(w, 2 * w, stride=2), _conv(2 * w, int(depth), kernel=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class Decoder(nn.Module):
    """Latent (N, d, h, w) -> image (N, 1, 8h, 8w) (seed 002, fig. 1, right half)."""

    def __init__(self, depth: int = 16, width: int = 64):
        super().__init__()
        w = int(width)
        self.layers = nn.Sequential(_conv(int(depth), 2 * w, kernel=1), _up(2 * w, w), _up(w, w), _up(w, w // 2),
                                    nn.Conv2d(w // 2, 1, 3, padding=1))  # second to last: no batch norm
        self.last = nn.Identity()  # last layer: no weights, biases, batch norm or activation

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.last(self.layers(latent))


class DenoisingAutoencoder(nn.Module):
    """Encoder and decoder trained together on noisy -> clean crops (seed 002, sec. 2).

    Parameters
    ----------
    depth : int
        Latent depth ``d`` (Table 1: 1, 2, 4, 8, 16, 32 or 64).
    width : int
        Features of the 40x40 and 80x80 layers (twice as many at 20x20).

    Examples
    --------
    >>> ae = DenoisingAutoencoder(depth=4, width=16)
    >>> ae.encoder(torch.zeros(1, 1, 160, 160)).shape
    torch.Size([1, 4, 20, 20])
    """

    multiple_of = 8

    def __init__(self, depth: int = 16, width: int = 64):
        super().__init__()
        if int(depth) < 1:
            raise ValueError(f"latent depth must be >= 1, got {depth}")
        self.depth, self.width = int(depth), int(width)
        self.encoder = Encoder(self.depth, self.width)
        self.decoder = Decoder(self.depth, self.width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))
