"""Ede & Beanland's atrous convolutional encoder-decoder (seed 001, sec. 2, fig. 1).

Layout for a 512x512 input (feature counts at ``width=1``; output stride 16):

* **Entry flow** (sec. 2.1): a residual convolutional downsampling block replaces
  Xception's first two convolutions (512 -> 256, 64 features); then Xception-style
  residual blocks of two depthwise-separable convolutions and one *strided*
  depthwise-separable convolution in place of max pooling, with 128, 256 and 728
  features (256 -> 128 -> 64 -> 32). The 256-feature tensor at 128x128 (before its
  block downsamples) and the 128-feature block output at 128x128 are the low-level
  features the decoder concatenates.
* **Middle flow** (sec. 2.2): 12 skip-3 residual blocks of three separable convolutions
  at 728 features on 32x32 tensors.
* **ASPP** (sec. 2.3): 1x1 convolution, three 3x3 atrous convolutions (rates 6, 12, 18)
  and image-level pooling, 728 features each (3640 concatenated; no pre-pooling 1x1
  convolution), then a 1x1 bottleneck to 256. The image-level branch makes every output
  pixel depend on the whole tile: model cards declare ``global: true``.
* **Decoder** (sec. 2.4): bilinear upsampling 32 -> 128, concatenation with the 256
  low-level features (1:1), two 3x3 convolutions; a second concatenation with the 128
  low-level features after a 1x1 reduction to 128 (1:1 again), two 3x3 convolutions,
  then two stride-2 transposed convolutions back to 512x512 and a 1x1 output layer.

Every convolution is followed by batch normalisation and ReLU6; separable convolutions
carry an extra batch norm between depthwise and pointwise parts (sec. 2, MobileNet).
Weights use Xavier (Glorot) initialisation (sec. 3.2). The final output layer is linear.

``width`` multiplies every feature count (rounded to a multiple of 8) and ``middle``
sets the number of middle-flow blocks, giving the small variants two CPU cores can
train; ``EdeXception()`` is the paper's network.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _scaled(features: int, width: float) -> int:
    return max(8, int(round(features * width / 8.0)) * 8)


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution -> batch norm -> ReLU6 (seed 001, sec. 2)."""
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 -> BN -> pointwise 1x1 -> BN -> ReLU6 (seed 001, sec. 2: extra BN between)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=dilation, dilation=dilation, groups=in_ch, bias=False),
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class DownsamplingBlock(nn.Module):
    """Residual convolutional downsampling block (seed 001, sec. 2.1, in place of Xception's first two convs)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_ch, out_ch // 2), conv_bn(out_ch // 2, out_ch, stride=2), conv_bn(out_ch, out_ch))
        self.skip = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class EntryBlock(nn.Module):
    """Xception entry-flow residual block; strided separable conv instead of max pooling (sec. 2.1)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convs = nn.Sequential(SeparableConv(in_ch, out_ch), SeparableConv(out_ch, out_ch))
        self.down = SeparableConv(out_ch, out_ch, stride=2)
        self.skip = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.convs(x)
        return self.down(features) + self.skip(x), features


class MiddleBlock(nn.Module):
    """Skip-3 residual block: three separable convolutions and an identity skip (sec. 2.2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.convs = nn.Sequential(*(SeparableConv(channels, channels) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convs(x)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with rates 6/12/18 and image pooling, 1x1 bottleneck (sec. 2.3)."""

    def __init__(self, in_ch: int, branch_ch: int, out_ch: int, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn(in_ch, branch_ch, kernel=1)] + [conv_bn(in_ch, branch_ch, dilation=r) for r in rates])
        # No batch norm on the 1x1 pooled branch: its statistics come from one value per channel.
        self.pool = nn.Sequential(nn.Conv2d(in_ch, branch_ch, 1), nn.ReLU6(inplace=True))
        self.bottleneck = conv_bn(branch_ch * (len(rates) + 2), out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.bottleneck(torch.cat(outs, dim=1))


class EdeXception(nn.Module):
    """Ede & Beanland's atrous encoder-decoder (seed 001, sec. 2, fig. 1).

    Maps a noisy crop scaled to [0, 1] (seed 001, sec. 3.1) to the denoised crop.

    Parameters
    ----------
    width : float
        Feature multiplier (1.0: the paper's 64/128/256/728 entry, 728 middle, 256 ASPP
        output features).
    middle : int
        Middle-flow skip-3 blocks (12 in the paper).

    Examples
    --------
    >>> net = EdeXception(width=0.125, middle=1)
    >>> net(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 1, 64, 64])
    """

    multiple_of = 16

    def __init__(self, width: float = 1.0, middle: int = 12):
        super().__init__()
        self.width, self.middle = float(width), int(middle)
        c64, c128, c256, c728 = (_scaled(c, self.width) for c in (64, 128, 256, 728))
        self.stem = DownsamplingBlock(1, c64)
        self.block1 = EntryBlock(c64, c128)
        self.block2 = EntryBlock(c128, c256)
        self.block3 = EntryBlock(c256, c728)
        self.middle_flow = nn.Sequential(*(MiddleBlock(c728) for _ in range(self.middle)))
        self.aspp = ASPP(c728, c728, c256)
        # Decoder: 1:1 high-level to low-level features at each concatenation (sec. 2.4).
        self.decode1 = nn.Sequential(conv_bn(2 * c256, c256), conv_bn(c256, c256))
        self.reduce = conv_bn(c256, c128, kernel=1)
        self.decode2 = nn.Sequential(conv_bn(2 * c128, c128), conv_bn(c128, c128))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c128, c64, 2, stride=2, bias=False), nn.BatchNorm2d(c64), nn.ReLU6(inplace=True),
            nn.ConvTranspose2d(c64, c64, 2, stride=2, bias=False), nn.BatchNorm2d(c64), nn.ReLU6(inplace=True),
        )
        self.out = nn.Conv2d(c64, 1, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)  # seed 001, sec. 3.2
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y, _ = self.block1(y)
        low_a = y  # 128 features at stride 4
        y, low256 = self.block2(y)  # low256 at stride 4
        y, _ = self.block3(y)
        y = self.aspp(self.middle_flow(y))
        y = F.interpolate(y, size=low256.shape[-2:], mode="bilinear", align_corners=False)
        y = self.decode1(torch.cat([y, low256], dim=1))
        y = self.decode2(torch.cat([self.reduce(y), low_a], dim=1))
        return self.out(self.up(y))
