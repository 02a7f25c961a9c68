"""Detector readings to electron counts for the likelihood test, refusing data that are not counts."""

from __future__ import annotations

import math

import numpy as np

from emdenoise.engine.validation import as_frame
from emdenoise.errors import InvalidInput

# Fractional parts below this are float rounding of integer counts, not real fractions.
_INTEGER_TOLERANCE = 1e-3


def counts_calibration(frame: np.ndarray, *, gain: float | None = None, offset: float | None = None) -> tuple[float, float, str]:
    """Gain and offset that turn ``frame`` into counts, and where they came from.

    Parameters
    ----------
    frame : ndarray
        The noisy frame as recorded (any accepted dtype).
    gain, offset : float, optional
        Detector reading per electron and reading at zero electrons. When both are
        missing the frame itself must already be counts: non-negative whole numbers.

    Returns
    -------
    gain : float
    offset : float
    source : str
        ``"given"``, or ``"counts"`` when the frame was taken as counts as it is.

    Raises
    ------
    InvalidInput
        Non-count data (fractions or negative values) without gain/offset, or a gain that
        is not a positive number.

    Notes
    -----
    The Poisson likelihood of seed 003 (sec. 3, eq. 1; App. B) is defined on counts: a
    frame in arbitrary units would give meaningless ratios, so it is refused rather than
    guessed at.
    """
    if gain is not None and not (math.isfinite(gain) and gain > 0):
        raise InvalidInput(f"the gain must be a positive number, not {gain}; correct --gain.")
    if offset is not None and not math.isfinite(offset):
        raise InvalidInput(f"the offset must be a finite number, not {offset}; correct --offset.")
    if gain is not None or offset is not None:
        return float(gain if gain is not None else 1.0), float(offset if offset is not None else 0.0), "given"
    values = np.asarray(frame)
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        fractional = finite.size and float(np.max(np.abs(finite - np.round(finite)))) > _INTEGER_TOLERANCE
    else:
        fractional = False
    if fractional or (values.size and float(np.min(values)) < 0):
        raise InvalidInput(
            "the noisy frame is not in counts (it has fractional or negative values) and no gain/offset were given; "
            "pass --gain and --offset (reading = offset + gain x electrons) so the Poisson test sees electrons."
        )
    step = reading_step(values)
    if step > 1:
        raise InvalidInput(
            f"the noisy frame's readings come in steps of {step}, so they are detector units (gain {step}?), not electron "
            "counts; pass --gain and --offset (reading = offset + gain x electrons) so the Poisson test sees electrons."
        )
    return 1.0, 0.0, "counts"


def reading_step(values: np.ndarray) -> int:
    """Greatest common divisor of the distinct readings above the smallest one (1 for counts).

    Poisson counts take neighbouring whole values, so their differences share no divisor;
    readings of ``offset + gain x electrons`` with a whole gain above 1 all differ by
    multiples of the gain.
    """
    finite = np.asarray(values, dtype=np.float64)
    levels = np.unique(np.round(finite[np.isfinite(finite)]).astype(np.int64))
    if levels.size < 3:  # too few levels to tell a gain from sparse counts
        return 1
    return int(np.gcd.reduce(levels[1:] - levels[0]))


def to_counts(frame: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """``(frame - offset) / gain`` as float64, after the engine's frame checks.

    Parameters
    ----------
    frame : ndarray
        2-D frame in detector units.
    gain, offset : float
        From :func:`counts_calibration`.

    Returns
    -------
    ndarray
        Counts per pixel, float64.
    """
    as_frame(frame)  # 2-D, supported dtype, no NaN/Inf; its float32 copy would lose digits
    return (np.asarray(frame, dtype=np.float64) - offset) / gain
