"""Latents to small integers and back (the lossy step before entropy coding).

Seed 002 stores latents as floats; a file needs fewer bits. Each latent channel of a
frame is mapped linearly from its own [minimum, maximum] onto ``0 .. 2**bits - 1`` and
rounded; the two float32 bounds per channel travel with the frame. The ReLU latents of
seed 002's encoders are non-negative and bounded, so 8 bits lose little (the benchmark
measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdenoise.errors import InvalidInput

BITS = (8, 16)


@dataclass
class QuantisedLatents:
    """``codes`` (same shape as the latents, uint8 or uint16) and per-channel ``low``/``high``."""

    codes: np.ndarray
    low: np.ndarray
    high: np.ndarray
    bits: int


def _dtype(bits: int) -> np.dtype:
    if bits not in BITS:
        raise InvalidInput(f"latents can be stored with {' or '.join(map(str, BITS))} bits, not {bits}; pick one of those.")
    return np.dtype(np.uint8 if bits == 8 else np.uint16)


def quantise(latents: np.ndarray, bits: int = 8) -> QuantisedLatents:
    """Quantise ``(tiles, depth, h, w)`` latents per channel to ``bits`` bits.

    Parameters
    ----------
    latents : ndarray
        float32 latents of one frame.
    bits : {8, 16}

    Returns
    -------
    QuantisedLatents
    """
    dtype = _dtype(bits)
    top = float(2**bits - 1)
    low = latents.min(axis=(0, 2, 3)).astype(np.float32)
    high = latents.max(axis=(0, 2, 3)).astype(np.float32)
    span = np.where(high > low, high - low, 1.0).astype(np.float32)
    scaled = (latents - low[None, :, None, None]) / span[None, :, None, None] * top
    codes = np.clip(np.rint(scaled), 0, top).astype(dtype)
    return QuantisedLatents(codes, low, high, bits)


def dequantise(q: QuantisedLatents) -> np.ndarray:
    """float32 latents back from :func:`quantise`'s codes (exact at the channel bounds)."""
    top = np.float32(2**q.bits - 1)
    span = np.where(q.high > q.low, q.high - q.low, 0.0).astype(np.float32)
    values = q.codes.astype(np.float32) / top * span[None, :, None, None] + q.low[None, :, None, None]
    return values.astype(np.float32, copy=False)
