"""The small UNet of DURR's restoration module, SBD's second learned baseline
(seed 003, appendix C.3; Zhang et al. 2018).

conv1 5x5 1->32, conv2 3x3 32->32 (kept as skip), conv3 3x3 stride 2 32->64, conv4 3x3,
conv5 3x3 dilation 2, conv6 3x3 dilation 4 (64->64), conv7 4x4 transposed stride 2,
conv8 3x3 on the concatenation with conv2 (96->32), conv9 5x5 32->1; ReLU after every
layer but the last. The appendix prints conv8's output as 64 channels but conv9 takes
32, so conv8 has 32 outputs (as in the authors' code). Inputs need even sides.
Receptive field ~45 px (seed 003, Table 2).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SmallUNet(nn.Module):
    """DURR small UNet (seed 003, appendix C.3).

    Examples
    --------
    >>> SmallUNet()(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """

    multiple_of = 2

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv5 = nn.Conv2d(64, 64, 3, dilation=2, padding=2)
        self.conv6 = nn.Conv2d(64, 64, 3, dilation=4, padding=4)
        self.conv7 = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1)
        self.conv8 = nn.Conv2d(96, 32, 3, padding=1)
        self.conv9 = nn.Conv2d(32, 1, 5, padding=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.relu(self.conv2(F.relu(self.conv1(x))))
        y = F.relu(self.conv3(skip))
        y = F.relu(self.conv4(y))
        y = F.relu(self.conv5(y))
        y = F.relu(self.conv6(y))
        y = F.relu(self.conv7(y))
        y = F.relu(self.conv8(torch.cat([y, skip], dim=1)))
        return self.conv9(y)
