"""Ede's denoising kernels and multilayer perceptrons (seed 002, sec. 3.1, fig. 3).

A student sees a w x w neighbourhood and predicts the centre pixel. A kernel (0 hidden
layers) weights the w^2 inputs and sums them; an MLP has 1 or 2 hidden layers of w^2
sigmoid units, each with its own weights and biases, fully connected to the next layer,
and a last fully connected layer to the single output (no bias, unactivated: the output
is a pixel value, not a probability). Applied at every pixel this is a w x w convolution
followed by 1x1 convolutions, which is how it is built here. ``padding`` is w // 2 for
export (the engine reflect-pads by the receptive-field radius and crops it again) and 0
for training, where the loss only sees pixels at least (w - 1) / 2 from a crop's edge
(seed 002, sec. 3.2).
"""

from __future__ import annotations

import torch
from torch import nn


class KernelMLP(nn.Module):
    """Kernel (``hidden=0``) or MLP with ``hidden`` sigmoid layers of w^2 units.

    Parameters
    ----------
    size : int
        Input side w (odd: 3, 5, 7, 11, 15 in seed 002).
    hidden : int
        Hidden layers (0 = kernel; seed 002 trains 1 and 2).
    pad : bool
        Zero-pad by w // 2 so the output has the input's shape.

    Examples
    --------
    >>> KernelMLP(3, 1)(torch.zeros(1, 1, 8, 8)).shape
    torch.Size([1, 1, 8, 8])
    """

    multiple_of = 1

    def __init__(self, size: int = 5, hidden: int = 0, *, pad: bool = True):
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"kernel size must be odd and positive, got {size}")
        self.size, self.hidden = int(size), int(hidden)
        units = self.size**2
        padding = self.size // 2 if pad else 0
        if self.hidden == 0:
            self.body = nn.Conv2d(1, 1, self.size, padding=padding, bias=False)
        else:
            layers: list[nn.Module] = [nn.Conv2d(1, units, self.size, padding=padding), nn.Sigmoid()]
            for _ in range(self.hidden - 1):
                layers += [nn.Conv2d(units, units, 1), nn.Sigmoid()]
            layers.append(nn.Conv2d(units, 1, 1, bias=False))
            self.body = nn.Sequential(*layers)
        for module in self.modules():  # seed 002 sec. 3.2: Xavier weights, zero biases
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def set_padding(self, pad: bool) -> None:
        """Switch between training (valid) and export (same-size) padding."""
        first = self.body if isinstance(self.body, nn.Conv2d) else self.body[0]
        first.padding = (self.size // 2,) * 2 if pad else (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
