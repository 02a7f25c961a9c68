"""The small residual U-Net that ``emdenoise adapt`` trains on the user's own frames.

Three 2x poolings, two 3x3 convolutions with leaky ReLU per scale, bilinear upsampling
with concatenated skips, and a 1x1 convolution whose output is *added* to the input, so an
untrained network is the identity and training learns the noise to remove. There is no
batch or instance normalisation: the output depends on a finite neighbourhood only (the
engine tiles it with a halo from the measured receptive field) and a batch of one crop
trains like a batch of many. The widths (``w, 2w, 2w, 4w``) follow SBD's UNet (seed 003,
appendix C.1) at a quarter of its depth, sized for minutes of CPU training.

:class:`CountsDenoiser` wraps it with the input scaling of one training run, so the
exported graph maps detected electrons per pixel to electrons per pixel.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
    )


class AdaptUNet(nn.Module):
    """Residual U-Net ``(N, 1, H, W) -> (N, 1, H, W)``; H and W multiples of 8.

    Parameters
    ----------
    width : int
        Channels at full resolution (24 by default: 0.3 M parameters).

    Examples
    --------
    >>> net = AdaptUNet(width=8)
    >>> net(torch.zeros(1, 1, 32, 40)).shape
    torch.Size([1, 1, 32, 40])
    """

    multiple_of = 8

    def __init__(self, width: int = 24):
        super().__init__()
        w = int(width)
        self.width = w
        self.enc0, self.enc1 = _block(1, w), _block(w, 2 * w)
        self.enc2, self.enc3 = _block(2 * w, 2 * w), _block(2 * w, 4 * w)
        self.dec2, self.dec1 = _block(6 * w, 2 * w), _block(4 * w, 2 * w)
        self.dec0 = _block(3 * w, w)
        self.out = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.out.weight)  # start as the identity
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        def up(x):
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

        e0 = self.enc0(image)
        e1 = self.enc1(F.max_pool2d(e0, 2))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([up(e3), e2], 1))
        d1 = self.dec1(torch.cat([up(d2), e1], 1))
        d0 = self.dec0(torch.cat([up(d1), e0], 1))
        return image + self.out(d0)


class CountsDenoiser(nn.Module):
    """``counts -> counts``: divides by the training run's ``scale``, denoises, multiplies back."""

    multiple_of = AdaptUNet.multiple_of

    def __init__(self, network: AdaptUNet, scale: float):
        super().__init__()
        self.network = network
        self.scale = float(scale)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image / self.scale) * self.scale
