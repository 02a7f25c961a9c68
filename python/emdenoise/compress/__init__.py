"""Compressed latents (seed 002, sec. 2): frames -> autoencoder latents -> ``.emz`` files -> restored frames.

:mod:`~emdenoise.compress.codec` runs the encoder and decoder graphs on 160x160 tiles,
:mod:`~emdenoise.compress.emz` stores quantised, zstd-coded latents with everything
needed to decode them, :mod:`~emdenoise.compress.files` turns image files into ``.emz``
files and back through any client (embedded engine or server).
"""

from emdenoise.compress.codec import DEFAULT_HALO, EncodedFrame, LatentCodec, codec_for
from emdenoise.compress.model import AutoencoderSpec, autoencoder_spec
from emdenoise.compress.seams import seam_ratio

__all__ = ["DEFAULT_HALO", "AutoencoderSpec", "EncodedFrame", "LatentCodec", "autoencoder_spec", "codec_for", "seam_ratio"]
