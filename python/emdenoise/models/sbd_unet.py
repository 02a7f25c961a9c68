"""The large-field-of-view UNet of SBD (seed 003, appendix C.1, Table 2).

Four scales: an input conv-block, four down-blocks (2x2 max-pool, conv-block) and four
up-blocks (bilinear x2 upsampling, concatenation with the skip of the same scale,
conv-block), then a 1x1 convolution to one channel. A conv-block is
conv-BN-ReLU-conv-BN-ReLU with 3x3 kernels. The network maps noisy counts to clean
counts (no residual).

Channels: the appendix speaks of one width per conv-block, but the parameter counts of
Table 2 (352 K, 1.41 M, 5.61 M for 32, 64, 128 "base channels") are those of the
authors' released layout, which this module follows: ``width`` channels at the three
finest scales, ``2 * width`` at the two coarsest, and up-blocks whose first convolution
halves the concatenated channels. ``SBDUNet(32)`` has 352 K parameters.

Its receptive field is ~221 px (seed 003, Table 2); the exported card records the value
measured by :func:`emdenoise.export.torch_export.receptive_field`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_block(in_channels: int, out_channels: int, mid_channels: int | None = None) -> nn.Sequential:
    """conv-BN-ReLU-conv-BN-ReLU, 3x3, zero padding (seed 003, appendix C.1)."""
    mid = mid_channels or out_channels
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SBDUNet(nn.Module):
    """SBD's UNet with ``scales`` poolings and base ``width`` (seed 003, appendix C.1).

    Parameters
    ----------
    width : int
        Base channels (the paper: 32, 64 or 128; Table 2).
    scales : int
        Number of 2x down/up-sampling steps (4 in the paper); inputs must have sides
        divisible by ``2 ** scales``.

    Examples
    --------
    >>> net = SBDUNet(width=8)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(self, width: int = 32, scales: int = 4):
        super().__init__()
        self.width, self.scales = int(width), int(scales)
        # Encoder channels per scale, finest first: 2x width at the two coarsest scales.
        enc = [self.width * (2 if level >= self.scales - 1 else 1) for level in range(self.scales + 1)]
        self.inc = conv_block(1, enc[0])
        self.down = nn.ModuleList(conv_block(enc[k], enc[k + 1]) for k in range(self.scales))
        up, below = [], enc[-1]
        for level in reversed(range(self.scales)):
            channels = below + enc[level]
            up.append(conv_block(channels, self.width, channels // 2))
            below = self.width
        self.up = nn.ModuleList(up)
        self.outc = nn.Conv2d(self.width, 1, 1)

    @property
    def multiple_of(self) -> int:
        """Input sides must be multiples of this."""
        return 2**self.scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([skip, y], dim=1))
        return self.outc(y)
