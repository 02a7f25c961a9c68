"""Standard image codecs at a byte budget, for ``bench compress`` (through imagecodecs).

Seed 002 compares its autoencoder latents with nothing; the question a microscopist asks
is whether they beat the codecs already in use at the same file size. Each lossy codec
is searched (bisection over its quality knob) for the best setting whose output fits the
budget; zstd gives the lossless reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdenoise.errors import UserError

BISECTION_STEPS = 14


@dataclass(frozen=True)
class Coded:
    """One image through a codec: its size and what decoding gives back."""

    nbytes: int
    restored: np.ndarray
    setting: float


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        raise UserError("bench compress needs imagecodecs for JPEG 2000 / JPEG XL; pip install 'emdenoise[bench]'.") from None
    return imagecodecs


def available_codecs() -> list[str]:
    """Lossy codecs this imagecodecs build offers, of ``jpeg2k`` and ``jpegxl``."""
    ic = _imagecodecs()
    return [name for name, flag in (("jpeg2k", ic.JPEG2K), ("jpegxl", ic.JPEGXL)) if flag.available]


def zstd_lossless(counts: np.ndarray, *, level: int = 19) -> Coded:
    """The uint16 counts, zstd-coded losslessly (restored exactly)."""
    import zstandard

    data = np.ascontiguousarray(counts, "<u2").tobytes()
    return Coded(len(zstandard.ZstdCompressor(level=level).compress(data)), counts.astype(np.float32), float(level))


def _jpeg2k(counts: np.ndarray, level: float) -> tuple[int, np.ndarray]:
    ic = _imagecodecs()
    bits = max(int(np.ceil(np.log2(int(counts.max()) + 1))), 1)
    data = ic.jpeg2k_encode(np.ascontiguousarray(counts, np.uint16), level=level, codecformat="j2k", bitspersample=bits)
    return len(data), ic.jpeg2k_decode(data).astype(np.float32)


def _jpegxl(counts: np.ndarray, distance: float) -> tuple[int, np.ndarray]:
    ic = _imagecodecs()
    low, high = float(counts.min()), float(counts.max())
    span = high - low or 1.0
    unit = ((counts.astype(np.float32) - low) / span).astype(np.float32)  # JPEG XL floats are nominally [0, 1]
    data = ic.jpegxl_encode(unit, distance=distance, effort=7, numthreads=1)
    return len(data), ic.jpegxl_decode(data).astype(np.float32) * span + low


# codec: (encoder, low setting, high setting, True when a higher setting gives more bytes)
_SEARCH = {
    "jpeg2k": (_jpeg2k, 1.0, 100.0, True),      # level: target quality (PSNR-like, dB)
    "jpegxl": (_jpegxl, 0.05, 25.0, False),     # Butteraugli distance: larger = smaller file
}


def at_budget(counts: np.ndarray, codec: str, budget: int) -> Coded:
    """``counts`` (uint16) through ``codec`` at the best quality whose output fits ``budget`` bytes.

    Parameters
    ----------
    counts : ndarray
        uint16 image.
    codec : {"jpeg2k", "jpegxl"}
    budget : int
        Bytes the coded image may take (the autoencoder file's size).

    Returns
    -------
    Coded
        The fitting result, or the smallest the codec reaches when nothing fits.
    """
    encode, low, high, rising = _SEARCH[codec]
    best: Coded | None = None
    smallest: Coded | None = None
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        nbytes, restored = encode(counts, middle)
        result = Coded(nbytes, restored, middle)
        if smallest is None or nbytes < smallest.nbytes:
            smallest = result
        fits = nbytes <= budget
        if fits and (best is None or nbytes > best.nbytes):
            best = result
        if fits == rising:  # fits with rising sizes: go higher; too big with falling sizes: go higher
            low = middle
        else:
            high = middle
    return best or smallest  # type: ignore[return-value]
