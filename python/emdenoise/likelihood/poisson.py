"""Poisson log-likelihood of counts under constant-rate hypotheses (seed 003, sec. 3, eq. 1)."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, pdtr, pdtrc  # Poisson cdf/sf without importing scipy.stats (~0.4 s)

#: Smallest rate a hypothesis may state [counts/px]. A rate of exactly zero makes any
#: nonzero count impossible (log-likelihood -inf); flooring keeps the ratio finite while
#: still heavily penalising a hypothesis that predicts no electrons where some arrived.
RATE_FLOOR = 1e-6


def poisson_loglik(counts: np.ndarray, rate: float | np.ndarray) -> float:
    """Log of eq. 1 of seed 003: ``log L(R) = sum_i log p_{x_i}(y_i)``.

    Parameters
    ----------
    counts : ndarray
        Observed counts ``y_i`` of the pixels of a region.
    rate : float or ndarray
        Poisson rates ``x_i`` (broadcast against ``counts``); floored at :data:`RATE_FLOOR`.

    Returns
    -------
    float
        ``sum_i (y_i log x_i - x_i - log y_i!)``.

    Notes
    -----
    Seed 003, sec. 3 "Likelihood maps", step 3: the noise is approximately i.i.d. Poisson
    (App. B), so the likelihood of the data in a region is the product of Poisson pmfs.

    Examples
    --------
    >>> round(poisson_loglik(np.array([0, 1, 2]), 1.0), 6)  # log(e^-1 * e^-1 * e^-1 / 2)
    -3.693147
    """
    y = np.asarray(counts, dtype=np.float64)
    x = np.maximum(np.asarray(rate, dtype=np.float64), RATE_FLOOR)
    return float(np.sum(y * np.log(x) - x - gammaln(y + 1.0)))


def constant_rate_llr(count_sum: float, pixels: int, column_rate: float, vacuum_rate: float) -> float:
    """Log-likelihood ratio of "constant rate ``column_rate``" against "``vacuum_rate``".

    Parameters
    ----------
    count_sum : float
        Sum of the observed counts over the region's pixels.
    pixels : int
        Number of pixels in the region.
    column_rate : float
        Hypothesis 1: the region's mean in the denoised image [counts/px].
    vacuum_rate : float
        Hypothesis 2: the mean of the noisy pixels of the vacuum [counts/px].

    Returns
    -------
    float
        ``log L1 - log L2 = sum(y) log(a / b) - n (a - b)``; positive when the data favour
        the column, negative when they favour vacuum. The ``log y!`` terms cancel, so the
        sum of the counts is a sufficient statistic.

    Notes
    -----
    Seed 003, sec. 3: the difference of the log-likelihoods of the two hypotheses, "a
    detected atomic column is (1) truly there, or (2) an artifact introduced by the
    denoising procedure", i.e. a log-likelihood ratio test.

    Examples
    --------
    >>> constant_rate_llr(0.0, 10, 1.0, 1.0)
    0.0
    >>> constant_rate_llr(20.0, 10, 2.0, 1.0) > 0 > constant_rate_llr(10.0, 10, 2.0, 1.0)
    True
    """
    a = max(float(column_rate), RATE_FLOOR)
    b = max(float(vacuum_rate), RATE_FLOOR)
    return float(count_sum) * float(np.log(a / b)) - int(pixels) * (a - b)


def region_llrs(counts: np.ndarray, labels: np.ndarray, column_rates: np.ndarray, vacuum_rate: float) -> np.ndarray:
    """:func:`constant_rate_llr` for every labelled region at once.

    Parameters
    ----------
    counts : ndarray
        Noisy frame in counts.
    labels : ndarray of int
        Region ``k`` (1..K) where ``labels == k``; other values are ignored.
    column_rates : ndarray, shape (K,)
        Hypothesis-1 rate of each region.
    vacuum_rate : float
        Hypothesis-2 rate shared by all regions.

    Returns
    -------
    ndarray, shape (K,)
        Log-likelihood ratio per region (float64).
    """
    count = len(column_rates)
    flat = labels.ravel()
    inside = (flat >= 1) & (flat <= count)
    sums = np.bincount(flat[inside], weights=counts.ravel()[inside].astype(np.float64), minlength=count + 1)[1:]
    sizes = np.bincount(flat[inside], minlength=count + 1)[1:]
    a = np.maximum(np.asarray(column_rates, dtype=np.float64), RATE_FLOOR)
    b = max(float(vacuum_rate), RATE_FLOOR)
    return sums * np.log(a / b) - sizes * (a - b)


def support_probability(true_rate: float, pixels: int, column_rate: float, vacuum_rate: float) -> float:
    """Exact probability that a region's LLR comes out positive.

    Parameters
    ----------
    true_rate : float
        Poisson rate the region's pixels really have [counts/px].
    pixels : int
        Pixels in the region.
    column_rate, vacuum_rate : float
        Hypotheses 1 and 2 of the test [counts/px].

    Returns
    -------
    float
        ``P(LLR > 0)``. ``LLR = S log(a / b) - n (a - b) > 0`` with ``S ~ Poisson(n *
        true_rate)`` the region's count sum: for ``a > b`` that is ``S > n (a - b) /
        log(a / b)``, for ``a < b`` the reverse.

    Notes
    -----
    Seed 003, sec. 3: the rate at which the likelihood-ratio test can support a column of
    that size and contrast at that dose, whatever the software. With ``true_rate =
    column_rate`` it is the test's power for that column (:attr:`Region.power`).

    Examples
    --------
    >>> round(support_probability(0.55, 160, 0.55, 0.45), 2)  # a faint 160 px column at 0.45 counts/px
    0.82
    >>> support_probability(0.45, 100, 0.45, 0.45)  # no contrast: never supported
    0.0
    """
    a, b = float(column_rate), float(vacuum_rate)
    if a == b:
        return 0.0
    threshold = pixels * (a - b) / math.log(a / b)
    mean = pixels * float(true_rate)
    if a > b:
        count = math.floor(threshold)  # P(N > count)
        return 1.0 if count < 0 else float(pdtrc(count, mean))
    count = math.ceil(threshold) - 1  # P(N <= count)
    return 0.0 if count < 0 else float(pdtr(count, mean))
