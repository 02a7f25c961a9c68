"""Ede & Beanland's dose model and training-crop preparation (seed 001, sec. 3.1).

The paper states the protocol in words; where it is silent the conventions of the
authors' released scripts (``Electron-Micrograph-Denoiser``: ``gen_lq``, ``scale0to1``,
``parser``) are followed and named in each docstring:

* a clean crop is linearly mapped to [0, 1] (min-max);
* it is multiplied by a dose scale ``s`` (counts at the crop's brightest pixel) and
  Poisson sampled;
* the noisy counts are mapped to [0, 1] by min-max again (the released ``gen_lq``), so the
  network and every baseline see a [0, 1] image;
* the ground truth is rescaled to have the noisy crop's mean.

Low dose: ``s = 25 + Exp(beta=75)``; ordinary dose: ``s ~ U(200, 2500)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdenoise.errors import InvalidInput

#: Offset and scale of the low-dose exponential law (seed 001, eq. 1 and text below it).
LOW_DOSE_OFFSET = 25.0
LOW_DOSE_BETA = 75.0
#: Bounds of the ordinary-dose uniform law (seed 001, sec. 3.1, last paragraph).
ORDINARY_DOSE_RANGE = (200.0, 2500.0)
#: Crop side used for training and for the benchmark (seed 001, sec. 3.1 and 4.1).
CROP_SIZE = 512

DOSES = ("low", "ordinary")


def scale_to_unit(image: np.ndarray) -> np.ndarray:
    """Map an image linearly onto [0, 1] (min-max), as float32.

    A constant image becomes 0.5 everywhere, as in the released ``scale0to1``.

    Parameters
    ----------
    image : ndarray
        Any real image.

    Returns
    -------
    ndarray of float32
        ``(image - min) / (max - min)``.
    """
    data = np.asarray(image, dtype=np.float64)
    lo, hi = float(data.min()), float(data.max())
    if hi == lo:
        return np.full(data.shape, 0.5, dtype=np.float32)
    return ((data - lo) / (hi - lo)).astype(np.float32)


def sample_dose_scale(dose: str, rng: np.random.Generator, *, law: str = "paper") -> float:
    """Draw the multiplier ``s`` that sets a crop's counts (seed 001, sec. 3.1, eq. 1).

    Parameters
    ----------
    dose : {"low", "ordinary"}
        ``"low"``: ``25 + Exp(beta=75)``; ``"ordinary"``: uniform in [200, 2500].
    rng : numpy.random.Generator
        Source of randomness.
    law : {"paper", "released-benchmark"}
        ``"paper"`` (default) is the law of the text. ``"released-benchmark"`` is the
        low-dose law of the authors' released ``apply_filters.py``, ``25 + 75 U(0, 1)``,
        kept to explain differences from Table 1; it does not change the ordinary dose.

    Returns
    -------
    float
        Counts per pixel at the brightest pixel of a [0, 1] crop.
    """
    if dose == "low":
        if law == "paper":
            return LOW_DOSE_OFFSET + float(rng.exponential(LOW_DOSE_BETA))
        if law == "released-benchmark":
            return LOW_DOSE_OFFSET + LOW_DOSE_BETA * float(rng.random())
        raise InvalidInput(f"Unknown dose law {law!r}; use 'paper' or 'released-benchmark'.")
    if dose == "ordinary":
        lo, hi = ORDINARY_DOSE_RANGE
        return float(rng.uniform(lo, hi))
    raise InvalidInput(f"Unknown dose {dose!r}; use 'low' or 'ordinary'.")


@dataclass(frozen=True)
class NoisyPair:
    """One Ede noise instance.

    Attributes
    ----------
    noisy : ndarray of float32
        Poisson counts mapped to [0, 1] (min-max).
    truth : ndarray of float32
        Clean crop rescaled to the noisy crop's mean.
    scale : float
        The dose multiplier ``s`` used.
    counts_per_unit : float
        Counts represented by one unit of ``noisy`` (``max - min`` of the counts), so
        ``noisy * counts_per_unit`` recovers the counts up to their minimum.
    """

    noisy: np.ndarray
    truth: np.ndarray
    scale: float
    counts_per_unit: float


def ede_noisy_pair(clean: np.ndarray, scale: float, rng: np.random.Generator) -> NoisyPair:
    """Apply Ede's Poisson noise to a clean crop (seed 001, sec. 3.1).

    Parameters
    ----------
    clean : ndarray
        Clean crop, any scale; it is first mapped to [0, 1] (min-max).
    scale : float
        Dose multiplier ``s`` (see :func:`sample_dose_scale`).
    rng : numpy.random.Generator
        Source of the Poisson draws.

    Returns
    -------
    NoisyPair
        ``noisy = minmax(Poisson(s * clean01))`` and ``truth = clean01 * mean(noisy) /
        mean(clean01)``, both float32. The min-max of the noisy crop is the released
        ``gen_lq``; the paper says only that truths were rescaled to the noisy mean.

    Notes
    -----
    The truth is not clipped to [0, 1] here (the released training parser clipped it,
    the released benchmark did not); benchmark metrics clip the *outputs*.
    """
    if scale <= 0:
        raise InvalidInput(f"Dose scale must be positive, got {scale}; pass counts per pixel > 0.")
    clean01 = scale_to_unit(clean).astype(np.float64)
    counts = rng.poisson(clean01 * scale).astype(np.float64)
    span = float(counts.max() - counts.min())
    noisy = scale_to_unit(counts)
    mean_clean = float(clean01.mean())
    if mean_clean == 0.0:
        raise InvalidInput("The clean crop is constant; use crops that contain structure.")
    truth = (clean01 * (float(noisy.mean()) / mean_clean)).astype(np.float32)
    return NoisyPair(noisy=noisy, truth=truth, scale=float(scale), counts_per_unit=span or 1.0)


def downsample_area(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """Downsize by an integer factor with area interpolation (seed 001, sec. 3.1).

    Parameters
    ----------
    image : ndarray
        2D image.
    factor : int
        Integer shrink factor; 2 turns Ede's 2048x2048 micrographs into 1024x1024.

    Returns
    -------
    ndarray of float32
        Block means over ``factor x factor`` blocks (what OpenCV's ``INTER_AREA`` computes
        for integer factors); trailing rows/columns that do not fill a block are dropped.
    """
    if factor < 1:
        raise InvalidInput(f"Downsampling factor must be >= 1, got {factor}.")
    data = np.asarray(image, dtype=np.float64)
    if factor == 1:
        return data.astype(np.float32)
    h, w = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    if h == 0 or w == 0:
        raise InvalidInput(f"Image {data.shape} is smaller than the downsampling factor {factor}.")
    blocks = data[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3)).astype(np.float32)


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """Return one of the 8 flips / 90-degree rotations of an image (``k`` in 0..7)."""
    rotated = np.rot90(image, k % 4)
    return np.flip(rotated, 0) if k >= 4 else rotated


def random_training_crop(
    micrograph: np.ndarray,
    rng: np.random.Generator,
    *,
    size: int = CROP_SIZE,
    downsample: int = 2,
) -> np.ndarray:
    """Prepare one crop as Ede prepared training and test crops (seed 001, sec. 3.1).

    Area-downsample by ``downsample``, take a ``size x size`` crop at a random position,
    apply a random one of the 8 flips / 90-degree rotations and map it to [0, 1].

    Parameters
    ----------
    micrograph : ndarray
        High-dose 2D micrograph, any scale.
    rng : numpy.random.Generator
        Source of the crop position and orientation.
    size : int
        Crop side (512 in the paper).
    downsample : int
        Area downsampling factor applied first (2 in the paper).

    Returns
    -------
    ndarray of float32
        The crop in [0, 1].
    """
    small = downsample_area(micrograph, downsample)
    h, w = small.shape
    if h < size or w < size:
        raise InvalidInput(
            f"Image of {h}x{w} px (after {downsample}x downsampling) is smaller than the "
            f"{size}x{size} crop; use a smaller --crop or a smaller --downsample."
        )
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    crop = dihedral(small[y : y + size, x : x + size], int(rng.integers(0, 8)))
    return scale_to_unit(crop)
