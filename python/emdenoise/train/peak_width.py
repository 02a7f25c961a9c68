"""How wide are the atoms of a STEM series? From the noisy frames alone, without torch.

Noise2Atom's clean domain (seed 004, "Datasets", item 1) is Gaussian peaks of variance 1-10
px^2, right for the paper's sampling. A series scanned more coarsely has sharper peaks (the
simulated 0.35 Å/px HAADF series of this project: about 0.25 px^2 fitted to its clean
frames), and a critic trained on broad peaks then pushes the generator to blur. Shot noise
is white, so the frames' spatial autocovariance away from lag 0 is the signal's alone; for
Gaussian peaks of variance ``v`` it falls as ``exp(-d^2 / (4 v))`` with the lag ``d``.
"""

from __future__ import annotations

import math

import numpy as np


def peak_variance(counts: np.ndarray) -> float:
    """Variance [px^2] of the series' peaks from its mean autocovariance at lags 1 and sqrt(2).

    Parameters
    ----------
    counts : ndarray (T, Y, X)
        The series in counts.

    Returns
    -------
    float
        ``1 / (4 log(C(1) / C(sqrt 2)))`` with ``C(d)`` the autocovariance averaged over the
        four lags of length ``d`` and over frames; NaN when the series has no resolvable
        structure (``C(1) <= C(sqrt 2)`` or ``C(sqrt 2) <= 0``). Peaks near other peaks
        (clusters) widen the estimate a little: 0.39 px^2 on the simulated series above.
        Below about 0.5 px^2 a peak is hardly wider than a pixel and the figure is the
        width of the sampled peak (0.21 for a point-sampled Gaussian of variance 0.3),
        which is what the clean domain, sampled the same way, has to match.

    Notes
    -----
    Used to place seed 004's clean domain ("a random variance in the range [1.0, 10.0]")
    at the user's sampling; see :func:`clean_variance_for`.
    """
    frames = np.asarray(counts, dtype=np.float64)
    frames = frames - frames.mean(axis=(-2, -1), keepdims=True)
    spectrum = np.fft.rfft2(frames)
    cov = np.fft.irfft2((np.abs(spectrum) ** 2).mean(axis=0), s=frames.shape[-2:]) / frames[0].size
    one = (cov[0, 1] + cov[1, 0] + cov[0, -1] + cov[-1, 0]) / 4
    diagonal = (cov[1, 1] + cov[-1, -1] + cov[1, -1] + cov[-1, 1]) / 4
    if not (diagonal > 0 and one > diagonal):
        return float("nan")
    return float(1.0 / (4.0 * math.log(one / diagonal)))


def clean_variance_for(counts: np.ndarray, paper: tuple[float, float] = (1.0, 10.0)) -> tuple[float, float]:
    """Variance range of the clean domain for this series: ``[v / 2, 1.25 v]`` of
    :func:`peak_variance`, or seed 004's ``paper`` range when ``v`` cannot be measured or
    already lies within it."""
    v = peak_variance(counts)
    if not math.isfinite(v) or paper[0] <= v <= paper[1]:
        return tuple(paper)
    return (round(0.5 * v, 3), round(1.25 * v, 3))
