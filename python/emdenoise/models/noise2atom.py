"""Noise2Atom networks (seed 004, Methods, "Network Architectures").

Four sub-models: ``Ms2c`` (noisy -> clean) and ``Mc2s`` (clean -> noisy), two identical
U-Nets of depth 3 built from Xception-style multi-kernel modules (kernel sizes 1, 3, 5, 7),
deep residual blocks, instance normalisation followed by leaky ReLU and a tanh output;
the Wasserstein critic ``D`` (4 downsampling modules, then one fully connected layer);
and ``Ms2b``, a fixed 33 x 33 Gaussian filter (sigma 15, no padding, no bias) that
extracts the slowly varying background.

The paper forbids zero padding ("There are no zero-paddings applied to the convolution and
transpose convolution operations") but its U-Net must return an image of the input's size
for the cycle losses; here every spatial convolution pads by reflection, which adds no
zeros and keeps sizes. Depth, width and the number of residual blocks are parameters, so
the same code trains the paper's network on a GPU and a narrow one on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Leaky ReLU slope (the paper gives none; Keras' default LeakyReLU uses 0.3, 0.2 is the DCGAN habit).
LEAKY_SLOPE = 0.2


def _norm_act(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.InstanceNorm2d(channels, affine=True), nn.LeakyReLU(LEAKY_SLOPE))


class XceptionModule(nn.Module):
    """Multi-kernel Xception module: depthwise-separable branches of kernel 1, 3, 5, 7.

    Each branch is a depthwise ``k x k`` convolution followed by a pointwise one; the four
    branch outputs are concatenated, mixed by a 1 x 1 convolution, instance-normalised and
    passed through leaky ReLU (seed 004, "Network Architectures": "Xception modules
    (Chollet 2017) using kernel sizes {1, 3, 5, 7}").

    Parameters
    ----------
    channels_in, channels_out : int
    kernels : tuple of int
        Branch kernel sizes (odd).
    """

    def __init__(self, channels_in: int, channels_out: int, kernels: tuple[int, ...] = (1, 3, 5, 7)):
        super().__init__()
        branch = max(channels_out // len(kernels), 1)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels_in, channels_in, k, padding=k // 2, padding_mode="reflect", groups=channels_in, bias=False)
                if k > 1 else nn.Identity(),
                nn.Conv2d(channels_in, branch, 1),
            )
            for k in kernels
        )
        self.mix = nn.Conv2d(branch * len(kernels), channels_out, 1)
        self.post = _norm_act(channels_out)

    def forward(self, x):
        return self.post(self.mix(torch.cat([b(x) for b in self.branches], dim=1)))


class ResidualBlock(nn.Module):
    """``x + IN(conv3(LReLU(IN(conv3(x)))))`` (He et al. 2016, as seed 004 cites)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            _norm_act(channels),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x):
        return x + self.body(x)


class Down(nn.Module):
    """Seed 004 downsampling: a 3 x 3 transposed convolution, then a stride-2 3 x 3 convolution.

    The transposed convolution (stride 1) grows the image by 2 pixels, and the unpadded
    stride-2 convolution then halves it exactly: ``(H + 2 - 3) // 2 + 1 = H / 2`` for even H.
    """

    def __init__(self, channels_in: int, channels_out: int, *, norm: bool = True):
        super().__init__()
        self.grow = nn.ConvTranspose2d(channels_in, channels_in, 3)
        self.down = nn.Conv2d(channels_in, channels_out, 3, stride=2)
        self.post = _norm_act(channels_out) if norm else nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x):
        return self.post(self.down(self.grow(x)))


class Up(nn.Module):
    """Seed 004 upsampling: a stride-2 4 x 4 transposed convolution, then a 3 x 3 convolution."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1)
        self.conv = nn.Conv2d(channels_out, channels_out, 3, padding=1, padding_mode="reflect")
        self.post = _norm_act(channels_out)

    def forward(self, x):
        return self.post(self.conv(self.up(x)))


class Noise2AtomUNet(nn.Module):
    """Generator of seed 004 (``Ms2c`` or ``Mc2s``): a U-Net with Xception modules, tanh output.

    Parameters
    ----------
    width : int
        Channels at full resolution; doubled at every level down.
    depth : int
        Downsampling levels (3 in the paper).
    residual_blocks : int
        Residual blocks at the bottom of the U (the paper's "deep residual blocks of 16").

    Notes
    -----
    Input and output live in [-1, 1] (tanh); height and width must be multiples of
    ``2 ** depth`` (attribute ``multiple_of``).
    """

    def __init__(self, width: int = 32, depth: int = 3, residual_blocks: int = 16):
        super().__init__()
        self.multiple_of = 2**depth
        channels = [width * 2**level for level in range(depth + 1)]
        self.stem = XceptionModule(1, channels[0])
        self.encoders = nn.ModuleList(XceptionModule(channels[i], channels[i]) for i in range(depth))
        self.downs = nn.ModuleList(Down(channels[i], channels[i + 1]) for i in range(depth))
        self.bottom = nn.Sequential(*[ResidualBlock(channels[depth]) for _ in range(residual_blocks)])
        self.ups = nn.ModuleList(Up(channels[i + 1], channels[i]) for i in reversed(range(depth)))
        self.decoders = nn.ModuleList(XceptionModule(2 * channels[i], channels[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for encode, down in zip(self.encoders, self.downs):
            x = encode(x)
            skips.append(x)
            x = down(x)
        x = self.bottom(x)
        for up, decode, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decode(torch.cat([up(x), skip], dim=1))
        return torch.tanh(self.head(x))


class Noise2AtomCritic(nn.Module):
    """Wasserstein critic ``D`` of seed 004: 4 downsampling modules and a fully connected layer.

    Each module is a 3 x 3 transposed convolution, a stride-2 3 x 3 convolution and 25 %
    dropout ("Network Architectures"). No normalisation: batch statistics would break the
    per-sample gradient penalty of WGAN-GP.

    Parameters
    ----------
    crop : int
        Side of the training crops (the dense layer sees ``crop / 16`` squared positions).
    width : int
        Channels of the first module, doubled at every module.
    """

    def __init__(self, crop: int = 128, width: int = 32, modules: int = 4):
        super().__init__()
        layers, channels = [], 1
        for i in range(modules):
            out = width * 2**i
            layers += [Down(channels, out, norm=False), nn.Dropout(0.25)]
            channels = out
        self.features = nn.Sequential(*layers)
        side = crop // 2**modules
        if side < 1 or crop % 2**modules:
            raise ValueError(f"crop {crop} must be a multiple of {2**modules} for a critic of {modules} modules")
        self.dense = nn.Linear(channels * side * side, 1)

    def forward(self, x):
        return self.dense(self.features(x).flatten(1))


def gaussian_filter_weights(size: int = 33, sigma: float = 15.0):
    """Normalised ``size`` x ``size`` Gaussian (sums to 1) as a (1, 1, size, size) tensor."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).float()[None, None]


class LowFrequency(nn.Module):
    """``Ms2b``: one fixed 33 x 33 Gaussian filter, no padding, no bias (seed 004).

    "We design Ms2b as a one-layered network, using a single filter of size 33 x 33,
    without padding and bias ... a normalized 2D Gaussian distribution with a variance of
    sigma = 15.0". The wording mixes variance and sigma; sigma = 15 px is used (a variance
    of 15 would make a 33 px window needlessly wide). Not trained.
    """

    def __init__(self, size: int = 33, sigma: float = 15.0):
        super().__init__()
        self.register_buffer("weight", gaussian_filter_weights(size, sigma))

    def forward(self, x):
        return F.conv2d(x, self.weight)


class SeriesDenoiser(nn.Module):
    """The exported model: counts in, counts out, around a trained ``Ms2c``.

    ``image / scale * 2 - 1`` maps counts to the generator's [-1, 1] input, and
    ``gain_out * (tanh + 1) / 2 + offset_out`` maps its clean-domain output back to
    counts. The output map is fitted after training by least squares of the restored
    training frames against the raw ones (an emdenoise addition: the paper reports only
    CSS, which ignores the intensity scale; PSNR against ground truth does not).

    Parameters
    ----------
    generator : Noise2AtomUNet
    scale : float
        Counts that map to +1 at the input.
    gain_out, offset_out : float
        Output calibration, counts per unit clean-domain intensity and background counts.
    """

    def __init__(self, generator: Noise2AtomUNet, scale: float, gain_out: float, offset_out: float):
        super().__init__()
        self.generator = generator
        self.multiple_of = generator.multiple_of
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("gain_out", torch.tensor(float(gain_out)))
        self.register_buffer("offset_out", torch.tensor(float(offset_out)))

    def forward(self, image):
        x = torch.clamp(image / self.scale * 2.0 - 1.0, -1.0, 1.0)
        return self.gain_out * (self.generator(x) + 1.0) * 0.5 + self.offset_out


def parameters_of(width: int, depth: int, residual_blocks: int) -> int:
    """Trainable parameters of one generator of this size (for cards and presets)."""
    return sum(p.numel() for p in Noise2AtomUNet(width, depth, residual_blocks).parameters())


__all__ = [
    "LowFrequency",
    "Noise2AtomCritic",
    "Noise2AtomUNet",
    "ResidualBlock",
    "SeriesDenoiser",
    "XceptionModule",
    "gaussian_filter_weights",
    "parameters_of",
]
