"""The classical baselines of SBD's Table 1 (seed 003, sec. 5 and appendix D).

* :func:`low_pass` - linear low-pass filter (the paper gives no cut-off; see its notes).
* :func:`adaptive_wiener` - Lim's adaptive Wiener filter over a 13x13 neighbourhood.
* :func:`vst_nlm`, :func:`vst_bm3d` - Anscombe transform, non-local means or BM3D for unit
  Gaussian noise, exact unbiased inverse (Makitalo & Foi).

The VST methods need counts: they take ``gain`` (detector units per count) and
``offset`` (reading at zero counts) and return detector units. The defaults (1, 0) mean
the frame is already in counts, as SBD's counting-mode frames are. Detector read noise
is ignored (pure Poisson Anscombe).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.restoration import denoise_nl_means

from emdenoise.baselines._frame import as_frame, from_counts, to_counts
from emdenoise.baselines.vst import anscombe, inverse_anscombe_unbiased
from emdenoise.errors import InvalidInput

#: Cut-off (cycles/px) of :func:`low_pass` by default. SBD gives no value; 0.15 keeps
#: periods down to about 7 px at half power, i.e. lattice fringes at usual HRTEM
#: sampling. ``emdenoise bench sbd`` tunes the cut-off on validation images instead and
#: records its choice, which depends strongly on the data and the dose.
DEFAULT_LPF_CUTOFF = 0.15


def low_pass(image: np.ndarray, *, cutoff: float = DEFAULT_LPF_CUTOFF, order: int = 4) -> np.ndarray:
    """Linear low-pass filter (seed 003, appendix D, "Low-pass Filter").

    The paper says only that the cut-off "was set in order to preserve the signal
    information, while suppressing the noise" and that hyperparameters were chosen on
    validation data. This is a Butterworth filter, ``|H(f)| = 1 / sqrt(1 + (f/cutoff)^(2
    order))`` with radial frequency ``f`` in cycles/px, applied in Fourier space to the
    frame padded by reflection (half its size each side) so the periodic FFT sees no
    edge jumps.

    Parameters
    ----------
    image : ndarray
        2D frame, any units (the filter is linear).
    cutoff : float
        Half-power frequency in cycles per pixel, in (0, 0.5] (0.5 is Nyquist).
    order : int
        Butterworth order; higher is sharper.

    Returns
    -------
    ndarray of float32
    """
    if not 0.0 < cutoff <= 0.5:
        raise InvalidInput(f"Low-pass cut-off must be in (0, 0.5] cycles/px, got {cutoff}.")
    if order < 1:
        raise InvalidInput(f"Butterworth order must be >= 1, got {order}.")
    data = as_frame(image)
    h, w = data.shape
    ph, pw = h // 2, w // 2
    padded = np.pad(data, ((ph, ph), (pw, pw)), mode="symmetric")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    radius = np.hypot(fy, fx)
    response = 1.0 / np.sqrt(1.0 + (radius / cutoff) ** (2 * order))
    filtered = np.fft.irfft2(np.fft.rfft2(padded) * response, s=padded.shape)
    return filtered[ph : ph + h, pw : pw + w].astype(np.float32)


def adaptive_wiener(image: np.ndarray, *, size: int = 13, noise: float | None = None) -> np.ndarray:
    """Lim's adaptive (local-statistics) Wiener filter (seed 003, appendix D).

    ``out = mu + max(var - nu, 0) / max(var, nu) * (x - mu)`` with local mean ``mu`` and
    variance ``var`` over a ``size x size`` window and noise power ``nu`` (the mean local
    variance when not given). SBD picked 13 from {3, 13, 27}. This is the formula of
    ``scipy.signal.wiener`` (and MATLAB's ``wiener2``) with reflected instead of zero
    borders, so its 6-pixel margin is not darkened; away from the border both agree.

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    size : int
        Odd window side (13 in the paper).
    noise : float, optional
        Noise power in the frame's units squared.

    Returns
    -------
    ndarray of float32
    """
    if size < 1 or size % 2 == 0:
        raise InvalidInput(f"Wiener window must be a positive odd integer, got {size}.")
    data = as_frame(image)
    mean = ndimage.uniform_filter(data, size, mode="reflect")
    mean_sq = ndimage.uniform_filter(data * data, size, mode="reflect")
    var = np.maximum(mean_sq - mean * mean, 0.0)
    nu = float(var.mean()) if noise is None else float(noise)
    gain = np.where(var > nu, 1.0 - nu / np.where(var > 0, var, 1.0), 0.0)
    return (mean + gain * (data - mean)).astype(np.float32)


def vst_nlm(
    image: np.ndarray,
    *,
    gain: float = 1.0,
    offset: float = 0.0,
    h: float = 0.8,
    patch_size: int = 5,
    patch_distance: int = 6,
) -> np.ndarray:
    """Anscombe VST + non-local means + exact unbiased inverse (seed 003, appendix D).

    After the transform the noise is close to unit Gaussian, so NLM runs with
    ``sigma = 1`` and cut-off ``h`` in units of that sigma (scikit-image suggests a
    little below 1 for its fast mode; the benchmark tunes it on validation data).

    Parameters
    ----------
    image : ndarray
        2D frame in detector units.
    gain, offset : float
        ``counts = (image - offset) / gain``.
    h : float
        NLM cut-off in noise standard deviations.
    patch_size, patch_distance : int
        Patch side and search radius.

    Returns
    -------
    ndarray of float32
        Denoised frame in detector units.
    """
    counts = to_counts(image, gain, offset)
    transformed = anscombe(counts)
    denoised = denoise_nl_means(
        transformed,
        patch_size=patch_size,
        patch_distance=patch_distance,
        h=h,
        sigma=1.0,
        fast_mode=True,
    )
    return from_counts(inverse_anscombe_unbiased(denoised), gain, offset)


def vst_bm3d(
    image: np.ndarray,
    *,
    gain: float = 1.0,
    offset: float = 0.0,
    sigma: float = 1.0,
    profile: str = "np",
) -> np.ndarray:
    """Anscombe VST + BM3D + exact unbiased inverse (seed 003, appendix D).

    Uses the ``bm3d`` package (Makitalo & Foi's group) with noise standard deviation
    ``sigma`` in the Anscombe domain (1 for a stabilised Poisson frame).

    Parameters
    ----------
    image : ndarray
        2D frame in detector units.
    gain, offset : float
        ``counts = (image - offset) / gain``.
    sigma : float
        Noise standard deviation after the transform.
    profile : str
        BM3D profile (``"np"``: the package's normal profile).

    Returns
    -------
    ndarray of float32
        Denoised frame in detector units.
    """
    import bm3d  # imported here: it pulls in a large compiled library

    if sigma <= 0:
        raise InvalidInput(f"BM3D noise sigma must be positive, got {sigma}.")
    counts = to_counts(image, gain, offset)
    denoised = np.asarray(bm3d.bm3d(anscombe(counts), sigma_psd=sigma, profile=profile))
    return from_counts(inverse_anscombe_unbiased(denoised.reshape(counts.shape)), gain, offset)
