"""DnCNN as SBD trains it for comparison (seed 003, appendix C.2; Zhang et al. 2017).

``depth`` 3x3 convolutional layers of ``width`` channels: conv-ReLU, then
(depth - 2) x conv-BN-ReLU, then a linear conv to one channel that predicts the noise;
the skip from input to output ("a skip connection from the initial layer to the final
layer, which has no nonlinear units") subtracts it. Receptive field 2 * depth + 1 = 41 px.
"""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    """DnCNN with residual output ``x - f(x)`` (seed 003, appendix C.2).

    Parameters
    ----------
    depth : int
        Convolutional layers (20 in SBD).
    width : int
        Channels of the hidden layers (64 in SBD).

    Examples
    --------
    >>> DnCNN(depth=3, width=4)(torch.zeros(1, 1, 9, 9)).shape
    torch.Size([1, 1, 9, 9])
    """

    def __init__(self, depth: int = 20, width: int = 64):
        super().__init__()
        self.depth, self.width = int(depth), int(width)
        layers: list[nn.Module] = [nn.Conv2d(1, self.width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(self.depth - 2):
            layers += [
                nn.Conv2d(self.width, self.width, 3, padding=1, bias=False),
                nn.BatchNorm2d(self.width),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(self.width, 1, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    multiple_of = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
