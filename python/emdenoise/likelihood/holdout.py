"""Counts the estimate never saw: binomial thinning of one frame, or a second frame.

Seed 003, sec. 3 tests each detected column against the noisy counts. When the denoised
estimate was made from those same counts, its noise blobs are fitted to the very counts
they are tested on, and a blob in the vacuum comes out "supported" (issue 21: 244 noise
blobs, all supported). Splitting the counts removes that bias: each electron of a pixel is
assigned to the estimate half with probability ``p`` (binomial thinning), so the two halves
are independent Poisson images of the same specimen at doses ``p x`` and ``(1 - p) x``.
"""

from __future__ import annotations

import numpy as np

from emdenoise.errors import InvalidInput

HOLDOUTS = ("thin", "none")

#: Seed of the thinning draw: the same frame gives the same split (and map) every run.
THINNING_SEED = 20210321


def thin_counts(counts: np.ndarray, fraction: float = 0.5, *, seed: int = THINNING_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split whole counts into two independent Poisson halves (binomial thinning).

    Parameters
    ----------
    counts : ndarray
        Non-negative whole counts ``y`` (any numeric dtype).
    fraction : float
        ``p``, the share of the electrons that goes to the first (estimate) half.
    seed : int
        Seed of the draw.

    Returns
    -------
    estimate_half, test_half : ndarray, int32
        ``y1 ~ Binomial(y, p)`` and ``y2 = y - y1``. If ``y ~ Poisson(x)`` then ``y1 ~
        Poisson(p x)`` and ``y2 ~ Poisson((1 - p) x)``, independent of each other.

    Notes
    -----
    The Poisson model of seed 003 (sec. 3, eq. 1; App. B) is what makes the halves
    independent: thinning a Poisson process gives independent Poisson processes.

    Examples
    --------
    >>> a, b = thin_counts(np.array([[0, 3], [10, 1]]))
    >>> bool(((a + b) == [[0, 3], [10, 1]]).all())
    True
    """
    if not 0 < fraction < 1:
        raise InvalidInput(f"the thinning fraction must lie between 0 and 1, not {fraction:g}; use e.g. 0.5.")
    y = np.rint(np.asarray(counts, dtype=np.float64)).astype(np.int64)
    if (y < 0).any():
        raise InvalidInput("binomial thinning needs non-negative counts; give the gain and offset of the detector.")
    first = np.random.default_rng(seed).binomial(y, fraction)
    return first.astype(np.int32), (y - first).astype(np.int32)


def thinned_estimate(denoise, counts: np.ndarray, fraction: float = 0.5, *, seed: int = THINNING_SEED,
                     with_estimate_counts: bool = False):
    """Denoise one half of the counts, return the other half and the estimate at its dose.

    Parameters
    ----------
    denoise : callable
        ``denoise(frame, gain)`` -> estimate in the units of ``frame``, where ``frame =
        gain x electrons`` (the engine's gain convention); it is called with the estimate
        half and ``gain = fraction``, so the model sees ``y1 / p`` electrons, the dose of
        the whole frame that it was chosen for.
    counts : ndarray
        Whole counts of the frame.
    fraction : float
        ``p``, the share of the counts the estimate is made from.
    seed : int
    with_estimate_counts : bool
        Also return ``y1`` (to locate the vacuum without looking at ``y2``).

    Returns
    -------
    test_counts : ndarray, int32
        ``y2``, the half the estimate never saw, at dose ``(1 - p) x``.
    estimate : ndarray, float64
        The estimate scaled to the test half's dose: ``(1 - p) / p`` times the denoised
        ``y1`` (first rescaled so that its total equals ``sum(y1)``, which uses only the
        estimate half), i.e. ``(1 - p)`` times the estimate of the whole-dose image.

    Notes
    -----
    Seed 003, sec. 3, eq. 1 at the test half's dose: for a region ``R`` with estimate
    mean ``a`` (of ``(1 - p) x``) and vacuum rate ``b`` (the mean of ``y2`` over the
    vacuum), ``LLR = sum_R y2 log(a / b) - |R| (a - b)``. Both hypotheses are stated at
    dose ``(1 - p) x`` and tested on counts independent of the estimate.
    """
    first, second = thin_counts(counts, fraction, seed=seed)
    estimate = np.asarray(denoise(first.astype(np.float32), fraction), dtype=np.float64)
    total = float(estimate.sum())
    # Keep the half's electron total: a denoiser that shifts the mean (clipping, normalisation)
    # would otherwise bias every hypothesis-1 rate against the vacuum rate.
    mean_fix = float(first.sum()) / total if total > 0 else 1.0
    scaled = estimate * (mean_fix * (1.0 - fraction) / fraction)
    return (second, scaled, first) if with_estimate_counts else (second, scaled)


def second_frame_estimate(denoise, estimate_frame: np.ndarray, test_frame: np.ndarray) -> np.ndarray:
    """Estimate of ``test_frame`` made from another frame of the same area (a pair or a stack).

    Parameters
    ----------
    denoise : callable
        ``denoise(frame)`` -> estimate in the units of ``frame``.
    estimate_frame, test_frame : ndarray
        Two exposures of the same area in counts, of the same size; their noise is
        independent, so the test of ``test_frame`` never sees the counts the estimate
        came from, and both keep the whole dose (no thinning).

    Returns
    -------
    ndarray, float64
        The estimate, scaled by ``sum(test) / sum(estimate)``: one number for the whole
        frame that absorbs a change of beam current between the exposures (its bias on any
        one region is of order ``1 / sqrt(total counts)``).

    Notes
    -----
    Issue 21, item 4 ("a second frame when there is one"). The frames must be aligned;
    drift between them moves the columns of the estimate off the columns of the counts
    and makes the test reject real columns.
    """
    first = np.asarray(estimate_frame, dtype=np.float64)
    second = np.asarray(test_frame, dtype=np.float64)
    if first.shape != second.shape:
        raise InvalidInput(
            f"the estimate frame is {first.shape[0]}x{first.shape[1]} but the test frame is "
            f"{second.shape[0]}x{second.shape[1]}; give two frames of the same area and size."
        )
    estimate = np.asarray(denoise(first), dtype=np.float64)
    total = float(estimate.sum())
    scale = float(second.sum()) / total if total > 0 else 1.0
    return estimate * scale
