"""A dose-independent counts denoiser: Anscombe transform, residual U-Net, inverse (issue 17).

Poisson noise grows with the signal; after the Anscombe transform ``a = 2 sqrt(c + 3/8)``
it has a standard deviation close to 1 at any dose (Anscombe 1948; the VST of seed 003's
VST+NLM/BM3D baselines, sec. 5). A network that denoises in that domain sees the same
noise level at 0.3 and at 60 counts per pixel, so one model covers the whole dose range
without knowing the dose and without statistics of the whole frame (it stays tileable).
The output is mapped back by the algebraic inverse ``(a / 2)^2 - 3/8`` (continued as
``sign(a) a^2 / 4 - 3/8`` below zero); training compares
that output with the clean counts, so the network learns to undo the inverse's bias at
low counts itself. An untrained network is the identity (the U-Net is residual with a
zero-initialised last layer).
"""

from __future__ import annotations

import torch
from torch import nn

from emdenoise.models.adapt_unet import AdaptUNet


class VstUNet(nn.Module):
    """``counts (N, 1, H, W) -> counts``, H and W multiples of ``2**depth``.

    Parameters
    ----------
    width : int
        Channels of the U-Net at full resolution (:class:`AdaptUNet`).
    depth : int
        Its number of poolings (3: ~117 px field of view; 4: ~245 px).

    Examples
    --------
    >>> net = VstUNet(width=8)
    >>> x = torch.full((1, 1, 16, 16), 4.0)
    >>> bool(torch.allclose(net(x), x, atol=1e-5))
    True
    """

    def __init__(self, width: int = 32, depth: int = 3):
        super().__init__()
        self.unet = AdaptUNet(width, depth)
        self.width, self.depth = int(width), int(depth)
        self.multiple_of = self.unet.multiple_of

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        stabilised = 2.0 * torch.sqrt(torch.relu(counts + 0.375))
        restored = self.unet(stabilised)
        # sign(a) a^2 / 4: the inverse on a >= 0, continued monotonically below 0 so the loss
        # never rewards pushing a negative (a plain square folds back and destabilised training).
        return 0.25 * restored * torch.abs(restored) - 0.375
