"""Restoration error without a clean image: the criteria ``adapt`` and ``classical-auto`` rank by.

Each estimates ``mean((f - x)^2)`` (``x`` the clean image, counts^2) up to a constant that
does not depend on the restoration ``f``, so it ranks restorations of the same data:

* **paired** (two frames of one field with independent noise, Noise2Noise): ``E(f(A) - B)^2
  = E(f(A) - x)^2 + E(B - x)^2``; subtracting the noise power of ``B`` (its mean, in
  noise-equivalent counts) leaves an unbiased estimate (:func:`emdenoise.metrics.paired_frame_mse`,
  as in seed 004's evaluation on consecutive frames). Scored both ways and averaged.
* **thinned** (one frame of integer counts): binomial thinning splits a Poisson image into
  two independent Poisson images of the same clean frame, scaled here to full-dose units,
  and the paired estimate is taken between them.
* **blind-spot** (one frame of any detector, Noise2Self / structured Noise2Void): a
  restoration whose value at a pixel ignores that pixel and every pixel whose noise
  correlates with it (the scan-line neighbours of STEM) satisfies ``E(f(y) - y)^2 =
  E(f(y) - x)^2 + var``; only such "J-invariant" restorations can be scored this way.
* **SURE** (one frame of any detector, any restoration): Stein's unbiased risk estimate
  for Gaussian noise of covariance ``S``, ``E|f(y) - x|^2 = E|f(y) - y|^2 - tr S +
  2 tr(S J_f)``, with the divergence term by Monte Carlo (Ramani, Blu & Unser 2008):
  ``tr(S J_f) ~ n.(f(y + e n) - f(y)) / e`` for ``n ~ N(0, S)``. ``S`` is the
  noise-equivalent counts' variance (the smoothed frame) with the scan-line correlation
  measured in the frame, so it scores networks that see every pixel, such as a
  sim-trained prior, and classical filters alike. On the real HAADF pair it ranked the
  Gaussians and the sim-trained STEM model as the paired error does, within 5 %.

Nothing here imports torch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from emdenoise.metrics.error import paired_frame_mse

Restore = Callable[[np.ndarray], np.ndarray]

#: Largest scan-line half-width a blind-spot mask covers (px).
MAX_MASK_HALF_WIDTH = 4
#: Noise correlation below which a neighbour counts as independent.
CORRELATION_THRESHOLD = 0.05


def paired_error(restore: Restore, frame_a: np.ndarray, frame_b: np.ndarray) -> float:
    """Unbiased error of ``restore`` from a pair, both directions averaged [counts^2].

    Parameters
    ----------
    restore : callable
        ``image -> restored image`` in counts.
    frame_a, frame_b : ndarray
        Registered frames of one field in counts, independent noise.
    """
    return 0.5 * (paired_frame_mse(restore(frame_a), frame_b) + paired_frame_mse(restore(frame_b), frame_a))


def thinning_halves(counts: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split whole counts into two independent Poisson images, each rescaled to the full dose.

    Returns ``(kept / fraction, (counts - kept) / (1 - fraction))`` with ``kept ~
    Binomial(counts, fraction)``; both have the clean image as their mean.
    """
    whole = np.rint(np.clip(counts, 0, None)).astype(np.int64)
    kept = rng.binomial(whole, fraction)
    return (kept / fraction).astype(np.float32), ((whole - kept) / (1.0 - fraction)).astype(np.float32)


#: Gaussian sigma [px] of the smoothing that gives the local noise variance for SURE.
SURE_VARIANCE_SMOOTHING = 2.0
#: Finite-difference step of the Monte-Carlo divergence, relative to the noise's RMS.
SURE_STEP = 0.01


def correlated_noise_kernel(correlations: list[float], half_length: int = 24) -> np.ndarray:
    """A symmetric 1-D filter whose autocorrelation is ``1, correlations[0], correlations[1], ...``.

    White noise filtered along x by it has the scan-line correlation of the frame's noise
    (the square root of the noise's power spectrum, taken zero-phase).
    """
    lags = np.arange(1, len(correlations) + 1)
    omega = np.linspace(0.0, np.pi, 2048)
    spectrum = 1.0 + 2.0 * np.sum(np.asarray(correlations, float)[:, None] * np.cos(lags[:, None] * omega), axis=0)
    full = np.concatenate([spectrum, spectrum[-2:0:-1]])
    taps = np.fft.fftshift(np.real(np.fft.ifft(np.sqrt(np.clip(full, 1e-3, None)))))
    middle = len(taps) // 2
    return taps[middle - half_length : middle + half_length + 1]


def noise_variance(frame: np.ndarray) -> np.ndarray:
    """Local noise variance of noise-equivalent counts: the smoothed frame (variance = mean)."""
    from scipy.ndimage import gaussian_filter

    return np.clip(gaussian_filter(np.asarray(frame, np.float64), SURE_VARIANCE_SMOOTHING), 0.05, None)


def correlated_noise(shape: tuple[int, ...], variance: np.ndarray, kernel: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with the given per-pixel variance, correlated along x (the last axis) by ``kernel``."""
    from scipy.ndimage import correlate1d

    white = correlate1d(rng.standard_normal(shape), kernel, axis=-1, mode="wrap")
    return white * np.sqrt(variance)


#: Lags along x of the noise correlation that SURE's probes (and recorrupted training) reproduce.
NOISE_LAGS = 16
#: Lowest |ky| [cycles/px] of the frame's spectrum that :func:`noise_correlation_along_x` reads.
NOISE_KY_FLOOR = 0.25


def noise_correlation_along_x(frame: np.ndarray, lags: int = NOISE_LAGS) -> list[float]:
    """Noise correlation along the scan line at lags ``1..lags``, from one frame's spectrum.

    Scan rows carry independent noise, so the noise's power spectrum is flat in ``ky``
    and has the scan line's shape in ``kx``; a specimen's power concentrates at low
    ``|ky|`` and in a few lattice peaks. The median over ``|ky| >= NOISE_KY_FLOOR`` of the
    frame's power at each ``kx`` is therefore the noise's spectrum, and its inverse
    transform the correlation at every lag, long tails included. (Row differences,
    :func:`scan_line_correlation`, pick up the specimen's y-gradients at long lags; on the
    real HAADF pair this estimate matched the pair difference's correlation within 0.006
    at lags 1-16, where lags beyond 3 carry a tenth of the low-frequency noise power a
    SURE probe must reproduce.)
    """
    image = np.asarray(frame, dtype=np.float64)
    if image.shape[0] < 8 or image.shape[1] <= 2 * lags:
        return [0.0] * lags
    # A Hann window along y stops the top/bottom edge jump from leaking power to high |ky|.
    window = np.hanning(image.shape[0] + 2)[1:-1, None]
    power = np.abs(np.fft.fft2((image - image.mean(axis=0)) * window)) ** 2
    high = power[np.abs(np.fft.fftfreq(image.shape[0])) >= NOISE_KY_FLOOR]
    autocorrelation = np.real(np.fft.ifft(np.median(high, axis=0)))
    if autocorrelation[0] <= 0:
        return [0.0] * lags
    return [float(v) for v in autocorrelation[1 : lags + 1] / autocorrelation[0]]


def sure_error(restore: Restore, frame: np.ndarray, *, correlations: list[float] | None = None,
               draws: int = 2, seed: int = 0) -> float:
    """Stein's unbiased estimate of ``mean((restore(frame) - x)^2)`` [counts^2], any restoration.

    Parameters
    ----------
    restore : callable
        ``image -> restored image`` in counts; need not be J-invariant.
    frame : ndarray
        One frame in noise-equivalent counts.
    correlations : list of float, optional
        Noise correlation along x at lags 1, 2, ... (default: measured in ``frame``,
        :func:`noise_correlation_along_x`).
    draws : int
        Monte-Carlo probes of the divergence.
    seed : int
        Seed of the probes (fixed, so snapshots are ranked on the same probes).
    """
    image = np.asarray(frame, dtype=np.float64)
    if correlations is None:
        correlations = noise_correlation_along_x(image)
    kernel = correlated_noise_kernel(correlations)
    variance = noise_variance(image)
    step = SURE_STEP * float(np.sqrt(variance.mean()))
    rng = np.random.default_rng(seed)
    restored = np.asarray(restore(image.astype(np.float32)), dtype=np.float64)
    divergence = 0.0
    for _ in range(draws):
        probe = correlated_noise(image.shape, variance, kernel, rng)
        moved = np.asarray(restore((image + step * probe).astype(np.float32)), dtype=np.float64)
        divergence += float(np.mean(probe * (moved - restored))) / step
    return float(np.mean((restored - image) ** 2) - variance.mean() + 2.0 * divergence / draws)


def thinned_error(restore: Restore, counts: np.ndarray, *, fraction: float = 0.5, seed: int = 0) -> float:
    """Unbiased error of ``restore`` on a thinned copy of ``counts`` [counts^2 at full dose].

    The input half carries ``fraction`` of the dose, so the figure is the error at that
    lower dose: it ranks restorations, it is not the error at full dose.
    """
    source, target = thinning_halves(counts, fraction, np.random.default_rng(seed))
    variance = float(target.mean()) / (1.0 - fraction)  # Poisson variance of the rescaled half
    return float(np.mean((restore(source).astype(np.float64) - target) ** 2) - variance)


def is_whole_counts(counts: np.ndarray, *, tolerance: float = 0.02) -> bool:
    """True when ``counts`` are (near) whole numbers, as a counting detector's are after gain/offset."""
    sample = np.asarray(counts, dtype=np.float64).ravel()[:: max(1, counts.size // 200_000)]
    return bool(np.mean(np.abs(sample - np.rint(sample))) < tolerance and sample.min() > -0.5)


def scan_line_correlation(frame: np.ndarray, max_lag: int = MAX_MASK_HALF_WIDTH) -> list[float]:
    """Noise correlation along x at lags ``1..max_lag`` of one frame.

    Differences of neighbouring rows cancel the (smooth in y) specimen and keep the noise,
    whose rows are independent in a scan; their correlation along x at lag ``k`` is the
    noise's.
    """
    image = np.asarray(frame, dtype=np.float64)
    if image.shape[0] < 4 or image.shape[1] <= max_lag + 2:
        return [0.0] * max_lag
    diff = image[1:] - image[:-1]
    diff = diff - diff.mean(axis=1, keepdims=True)
    power = float(np.mean(diff * diff))
    if power <= 0:
        return [0.0] * max_lag
    return [float(np.mean(diff[:, k:] * diff[:, :-k]) / power) for k in range(1, max_lag + 1)]


def mask_half_width(frame: np.ndarray) -> int:
    """Scan-line neighbours on each side whose noise correlates with a pixel's (0 for white noise)."""
    half = 0
    for lag, value in enumerate(scan_line_correlation(frame), start=1):
        if value < CORRELATION_THRESHOLD:
            break
        half = lag
    return half


def blind_spot_error(restore_blind: Restore, frame: np.ndarray) -> float:
    """Self-supervised error of a J-invariant restoration: ``mean((f(y) - y)^2) - mean(y)`` [counts^2].

    ``restore_blind`` must ignore each pixel's own value and its correlated neighbours
    (e.g. :func:`donut_gaussian`); then the figure is an unbiased estimate of the error
    against the clean image, for Poisson counts in noise-equivalent units.
    """
    image = np.asarray(frame, dtype=np.float64)
    return float(np.mean((restore_blind(frame).astype(np.float64) - image) ** 2) - image.mean())


def donut_gaussian(image: np.ndarray, sigma: float, half_width: int) -> np.ndarray:
    """Gaussian blur that ignores each pixel and ``half_width`` scan-line neighbours each side.

    The J-invariant form of a Gaussian (Noise2Self, Batson & Royer 2019): the blur minus the
    masked pixels' share, renormalised, so :func:`blind_spot_error` can score it.
    """
    from scipy.ndimage import correlate1d

    image = np.asarray(image, dtype=np.float64)
    sigma = max(float(sigma), 0.3)
    radius = max(int(np.ceil(4 * sigma)), half_width + 1)  # room for the mask and one ring around it
    axis = np.arange(-radius, radius + 1)
    weights = np.exp(-(axis**2) / (2 * sigma**2))
    weights /= weights.sum()
    # The 2-D kernel is outer(weights, weights) without its masked centre-row taps; filtering
    # separably and subtracting those taps is the same sum at O(radius) instead of O(radius^2).
    blurred = correlate1d(correlate1d(image, weights, axis=0, mode="reflect"), weights, axis=1, mode="reflect")
    taps = np.zeros_like(weights)
    taps[radius - half_width : radius + half_width + 1] = weights[radius] * weights[radius - half_width : radius + half_width + 1]
    masked = correlate1d(image, taps, axis=1, mode="reflect")
    return ((blurred - masked) / (1.0 - taps.sum())).astype(np.float32)
