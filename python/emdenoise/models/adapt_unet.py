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
    """Residual U-Net ``(N, 1, H, W) -> (N, 1, H, W)``; H and W multiples of ``2**depth``.

    Parameters
    ----------
    width : int
        Channels at full resolution (24 by default: 0.3 M parameters).
    depth : int
        Number of 2x poolings (3 by default; 4 doubles the field of view, for HRTEM).

    Examples
    --------
    >>> net = AdaptUNet(width=8)
    >>> net(torch.zeros(1, 1, 32, 40)).shape
    torch.Size([1, 1, 32, 40])
    """

    def __init__(self, width: int = 24, depth: int = 3):
        super().__init__()
        w, depth = int(width), int(depth)
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.width, self.depth = w, depth
        self.multiple_of = 2**depth
        # Channels per scale: w, 2w, 2w, 4w, 4w, ... (seed 003's UNet doubles less often than it pools).
        widths = [w] + [w * 2 ** ((i + 1) // 2) for i in range(1, depth + 1)]
        for i in range(depth + 1):
            setattr(self, f"enc{i}", _block(1 if i == 0 else widths[i - 1], widths[i]))
        for i in range(depth - 1, -1, -1):
            setattr(self, f"dec{i}", _block(widths[i + 1] + widths[i], widths[i]))
        self.out = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.out.weight)  # start as the identity
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        def up(x):
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

        skips = [self.enc0(image)]
        for i in range(1, self.depth + 1):
            skips.append(getattr(self, f"enc{i}")(F.max_pool2d(skips[-1], 2)))
        x = skips[-1]
        for i in range(self.depth - 1, -1, -1):
            x = getattr(self, f"dec{i}")(torch.cat([up(x), skips[i]], 1))
        return image + self.out(x)


class CountsDenoiser(nn.Module):
    """``counts -> counts``: divides by the training run's ``scale``, denoises, multiplies back."""

    def __init__(self, network: AdaptUNet, scale: float):
        super().__init__()
        self.network = network
        self.multiple_of = network.multiple_of
        self.scale = float(scale)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image / self.scale) * self.scale
