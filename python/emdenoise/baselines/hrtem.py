"""Classical HRTEM filters microscopists use: Gaussian, Fourier-space Wiener and ABSF (issue 17, item 1).

* :func:`gaussian` - isotropic Gaussian blur, the row every benchmark tunes.
* :func:`fourier_wiener`, :func:`absf` - the Wiener and average-background-subtraction
  filters of Kilaas (1998), the "HRTEM filter" of DigitalMicrograph users: the
  amplitude spectrum of a crystal image is a smooth background (noise and aperiodic
  contrast) plus sharp lattice reflections; the filters estimate the background and
  keep what rises above it, with the phases unchanged.

All three are linear in the frame's units apart from the data-dependent gains, so they
work on counts or on detector units alike.

References
----------
R. Kilaas, "Optimal and near-optimal filters in high-resolution electron microscopy",
J. Microsc. 190 (1998) 45-51.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from emdenoise.baselines._frame import as_frame
from emdenoise.errors import InvalidInput


def gaussian(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels, reflected borders.

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    sigma : float
        Standard deviation [px]; the benchmarks tune it over
        :data:`emdenoise.tuning.GAUSSIAN_SIGMAS`.

    Returns
    -------
    ndarray of float32
    """
    if not sigma > 0:
        raise InvalidInput(f"Gaussian sigma must be positive, got {sigma}.")
    return ndimage.gaussian_filter(as_frame(image), float(sigma), mode="reflect").astype(np.float32)


def background_amplitude(amplitude: np.ndarray, *, width: int = 9, iterations: int = 1) -> np.ndarray:
    """Smooth lower envelope of an ``rfft2`` amplitude spectrum (Kilaas 1998, sec. 3).

    Each iteration replaces every value by the smaller of itself and its ``width x width``
    local mean, so sharp reflections are shaved off while the smooth background stays.
    The frequency rows wrap (the spectrum is periodic); the half-plane columns reflect.
    """
    background = amplitude.astype(np.float32)
    for _ in range(int(iterations)):
        smooth = ndimage.uniform_filter(background, size=int(width), mode=("wrap", "reflect"))
        np.minimum(background, smooth, out=background)
    return ndimage.uniform_filter(background, size=int(width), mode=("wrap", "reflect"))


def _spectral_filter(image: np.ndarray, delta: float, width: int, iterations: int, power: int) -> np.ndarray:
    if not delta > 0:
        raise InvalidInput(f"Background scale delta must be positive, got {delta}.")
    if width < 1 or iterations < 0:
        raise InvalidInput(f"Smoothing width must be >= 1 and iterations >= 0, got {width} and {iterations}.")
    data = as_frame(image)
    h, w = data.shape
    ph, pw = h // 2, w // 2
    # Reflection padding (half the frame each side), as the low-pass filter does, so the
    # periodic FFT sees no edge jumps whose streaks would pass as signal.
    padded = np.pad(data, ((ph, ph), (pw, pw)), mode="symmetric")
    mean = float(padded.mean())
    spectrum = np.fft.rfft2(padded - mean)
    amplitude = np.abs(spectrum).astype(np.float32)
    background = float(delta) * background_amplitude(amplitude, width=width, iterations=iterations)
    ratio = np.where(amplitude > 0, background / np.where(amplitude > 0, amplitude, 1.0), np.inf)
    gain = np.clip(1.0 - np.minimum(ratio, 2.0) ** power, 0.0, None)
    filtered = np.fft.irfft2(spectrum * gain, s=padded.shape) + mean
    return filtered[ph : ph + h, pw : pw + w].astype(np.float32)


def fourier_wiener(image: np.ndarray, *, delta: float = 1.0, width: int = 9, iterations: int = 1) -> np.ndarray:
    """Fourier-space Wiener filter with the background estimated from the image (Kilaas 1998).

    ``F_out = F * max(|F|^2 - (delta B)^2, 0) / |F|^2``, with ``B`` the smooth background
    of the amplitude spectrum from :func:`background_amplitude` taken as the noise
    amplitude; the mean is kept.

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    delta : float
        Scale of the background subtracted (1: as estimated); tuned on validation images.
    width, iterations : int
        Background smoothing window [frequency pixels] and number of iterations.

    Returns
    -------
    ndarray of float32
    """
    return _spectral_filter(image, delta, width, iterations, power=2)


def absf(image: np.ndarray, *, delta: float = 1.0, width: int = 9, iterations: int = 1) -> np.ndarray:
    """Average background subtraction filter, ABSF (Kilaas 1998).

    ``F_out = F * max(|F| - delta B, 0) / |F|``: the background amplitude is subtracted
    and the phase kept.

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    delta : float
        Scale of the background subtracted; tuned on validation images.
    width, iterations : int
        As in :func:`fourier_wiener`.

    Returns
    -------
    ndarray of float32
    """
    return _spectral_filter(image, delta, width, iterations, power=1)
