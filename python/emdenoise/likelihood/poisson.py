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


#: Significance of the per-region decision (:func:`decide`): the largest probability of
#: calling a region "supported" when its counts are vacuum, or "contradicted" when the
#: column is really there at the estimate's intensity.
SIGNIFICANCE = 0.05

DECISIONS = ("supported", "contradicted", "undecided")


def tail_p_values(count_sum: float, pixels: int, column_rate: float, vacuum_rate: float) -> tuple[float, float]:
    """Exact one-sided p-values of a region's count sum under each hypothesis.

    Parameters
    ----------
    count_sum : float
        ``S``, the region's observed counts (rounded to a whole number).
    pixels : int
        ``n``.
    column_rate, vacuum_rate : float
        ``a`` (hypothesis 1) and ``b`` (hypothesis 2) [counts/px].

    Returns
    -------
    p_vacuum, p_column : float
        ``p_vacuum``: probability under vacuum (``S ~ Poisson(n b)``) of a sum at least as
        far towards the column as the one observed; ``p_column``: probability under the
        column (``S ~ Poisson(n a)``) of a sum at least as far towards vacuum. For bright
        columns (``a > b``) these are ``P_b(S' >= S)`` and ``P_a(S' <= S)``; for dark ones
        the inequalities turn round. Both are 1 when ``a == b`` (nothing to decide).

    Notes
    -----
    The log-likelihood ratio of seed 003 (sec. 3), ``S log(a / b) - n (a - b)``, is monotone
    in ``S``, so thresholding ``S`` at a Poisson quantile *is* the likelihood-ratio test
    (Neyman-Pearson) with an exact significance, where a fixed LLR threshold would have a
    significance that changes with the region's size and contrast.

    Examples
    --------
    >>> p_vac, p_col = tail_p_values(31, 100, 0.30, 0.225)
    >>> round(p_vac, 3), round(p_col, 3)
    (0.051, 0.619)
    """
    a, b = float(column_rate), float(vacuum_rate)
    s = int(round(float(count_sum)))
    if a == b or pixels <= 0:
        return 1.0, 1.0
    mean_b, mean_a = pixels * max(b, RATE_FLOOR), pixels * max(a, RATE_FLOOR)
    if a > b:
        p_vacuum = 1.0 if s <= 0 else float(pdtrc(s - 1, mean_b))  # P_b(S' >= s)
        p_column = float(pdtr(s, mean_a))  # P_a(S' <= s)
    else:
        p_vacuum = float(pdtr(s, mean_b))  # P_b(S' <= s)
        p_column = 1.0 if s <= 0 else float(pdtrc(s - 1, mean_a))  # P_a(S' >= s)
    return p_vacuum, p_column


def decide(count_sum: float, pixels: int, column_rate: float, vacuum_rate: float, significance: float = SIGNIFICANCE) -> str:
    """``supported``, ``contradicted`` or ``undecided``: the likelihood-ratio test at ``significance``.

    ``supported`` when the vacuum hypothesis is rejected (``p_vacuum <= significance``)
    and the LLR is positive; ``contradicted`` when the column hypothesis is rejected and
    the LLR is negative; ``undecided`` otherwise - too few counts or too little contrast
    for either hypothesis to be rejected, which says nothing about the column.

    Notes
    -----
    Seed 003, sec. 3 reads the sign of the LLR ("negative ... less likely than its
    absence"). A sign alone has a significance near 50 % for the faint, small regions of
    0.45 counts/px (noise blobs in the vacuum come out "supported" about as often as not),
    so the decision adds the test's significance and a third outcome; the LLR itself is
    still what the map shows.

    Examples
    --------
    >>> decide(80, 100, 0.55, 0.45), decide(30, 100, 0.55, 0.45), decide(50, 100, 0.55, 0.45)
    ('supported', 'contradicted', 'undecided')
    """
    if not 0 < significance < 1:
        raise ValueError(f"significance {significance}; give a probability between 0 and 1")
    p_vacuum, p_column = tail_p_values(count_sum, pixels, column_rate, vacuum_rate)
    llr = constant_rate_llr(round(float(count_sum)), pixels, column_rate, vacuum_rate)
    if p_vacuum <= significance and llr > 0:
        return "supported"
    if p_column <= significance and llr < 0:
        return "contradicted"
    return "undecided"


def decision_power(pixels: int, column_rate: float, vacuum_rate: float, significance: float = SIGNIFICANCE,
                   true_rate: float | None = None) -> float:
    """Probability that :func:`decide` says ``supported`` when the pixels' rate is ``true_rate``.

    ``true_rate`` defaults to ``column_rate``: the power of the test for a column that
    really is there at the estimate's intensity.

    Examples
    --------
    >>> round(decision_power(100, 0.45, 0.225), 3)  # a clear 100 px column, test half of 0.45 counts/px
    0.974
    >>> decision_power(100, 0.225, 0.225)
    0.0
    """
    a, b = max(float(column_rate), RATE_FLOOR), max(float(vacuum_rate), RATE_FLOOR)
    if a == b or pixels <= 0:
        return 0.0
    x = a if true_rate is None else float(true_rate)
    mean_b, mean_x = pixels * max(b, RATE_FLOOR), pixels * max(x, RATE_FLOOR)
    midpoint = pixels * (a - b) / math.log(a / b)  # LLR = 0 at S = midpoint
    if a > b:
        # smallest k with P_b(S >= k) <= significance and LLR(k) > 0
        k = int(pdtrik_upper(mean_b, significance))
        k = max(k, math.floor(midpoint) + 1)
        return float(pdtrc(k - 1, mean_x)) if k > 0 else 1.0
    # largest k with P_b(S <= k) <= significance and LLR(k) > 0
    k = pdtrik_lower(mean_b, significance)
    k = min(k, math.ceil(midpoint) - 1)
    return 0.0 if k < 0 else float(pdtr(k, mean_x))


def _cdf_table(mean: float) -> np.ndarray:
    """``P(N <= k)`` for ``k = 0 .. K`` with ``K`` well past the upper tail of ``Poisson(mean)``."""
    return pdtr(np.arange(int(mean + 12 * math.sqrt(mean) + 30)), mean)


def pdtrik_upper(mean: float, significance: float) -> int:
    """Smallest whole ``k`` with ``P(N >= k) <= significance`` for ``N ~ Poisson(mean)``."""
    survival = 1.0 - np.concatenate([[0.0], _cdf_table(mean)])  # survival[k] = P(N >= k)
    return int(np.flatnonzero(survival <= significance)[0])


def pdtrik_lower(mean: float, significance: float) -> int:
    """Largest whole ``k`` with ``P(N <= k) <= significance`` (-1 when there is none)."""
    below = np.flatnonzero(_cdf_table(mean) <= significance)
    return int(below[-1]) if below.size else -1
