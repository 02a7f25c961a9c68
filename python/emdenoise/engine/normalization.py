"""Input normalisations the model cards declare, applied per frame before tiling.

Statistics come from the whole frame so that every tile of it sees the same mapping:
this is what makes a tiled result equal the untiled one. Statistics and both directions
of the map are computed in float64: float32 data near +-3.4e38 overflow float32 sums and
differences, and a result that float32 still cannot hold is refused, never returned as
inf or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emdenoise.engine.cards import CardError
from emdenoise.engine.validation import check_job_options
from emdenoise.errors import InvalidInput


@dataclass(frozen=True)
class AffineMap:
    """``normalised = (raw - shift) / scale`` and its inverse."""

    shift: float
    scale: float

    def forward(self, frame: np.ndarray, *, where: str = "the frame") -> np.ndarray:
        """Normalise ``frame`` (float32 out); refuse values the model's float32 cannot hold."""
        return _finite_float32((np.asarray(frame, np.float64) - self.shift) / self.scale, where, "normalised")

    def inverse(self, frame: np.ndarray, *, where: str = "the frame") -> np.ndarray:
        """Map a model output back to the frame's values (float32 out), refusing overflow."""
        return _finite_float32(np.asarray(frame, np.float64) * self.scale + self.shift, where, "denoised")


def _finite_float32(values: np.ndarray, where: str, what: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        result = values.astype(np.float32)
    if not np.isfinite(result).all():
        largest = float(np.nanmax(np.abs(values))) if not np.isnan(values).all() else float("nan")
        raise InvalidInput(
            f"{where} is too large for 32-bit arithmetic once {what} (values up to {largest:.3g}); "
            "scale the image down first (e.g. ImageJ: Process > Math > Multiply by 1e-20)."
        )
    return result


def _safe_scale(value: float) -> float:
    return float(value) if np.isfinite(value) and value > 0 else 1.0


def fit_normalization(frame: np.ndarray, spec: dict[str, Any], **calibration: float) -> AffineMap:
    """Return the affine map a card's ``normalization`` asks for, fitted to ``frame``.

    Parameters
    ----------
    frame : ndarray
        2-D float32 frame.
    spec : dict
        The card's ``normalization``: ``{"kind": "none" | "min-mean" | "range01" | "counts"}``.

        - ``min-mean`` (seed 002, sec. 2.2): subtract the minimum, divide by the mean of
          the result.
        - ``range01`` (seed 001, sec. 3.1): scale to [0, 1] by minimum and maximum.
        - ``counts`` (seed 003, sec. 3): ``(raw - offset) / gain`` to detected electrons;
          ``gain`` and ``offset`` come from ``calibration``; a missing one is estimated
          from this frame's mean-variance relation
          (:func:`emdenoise.noise.calibration.resolve_counts`, offset 0 assumed when the
          frame is flat or tiny; gain 1 / offset 0 when nothing can be estimated, e.g. a
          constant frame). Clients of this package send the estimate of a job's
          first frame, so a stack is normalised alike. Unusable values are refused by
          :func:`emdenoise.engine.validation.check_job_options`.
    **calibration : float
        ``gain`` and ``offset`` for the counts normalisation.

    Returns
    -------
    AffineMap

    Raises
    ------
    InvalidInput
        A gain or offset that :func:`~emdenoise.engine.validation.check_job_options` refuses.
    """
    kind = spec.get("kind", "none")
    if kind == "none":
        return AffineMap(0.0, 1.0)
    if kind == "min-mean":
        low = float(frame.min())
        return AffineMap(low, _safe_scale(float(frame.mean(dtype=np.float64)) - low))
    if kind == "range01":
        low = float(frame.min())
        return AffineMap(low, _safe_scale(float(frame.max()) - low))
    if kind == "counts":
        checked = check_job_options(gain=calibration.get("gain"), offset=calibration.get("offset"))
        gain, offset = checked["gain"], checked["offset"]
        if gain is None or offset is None:
            from emdenoise.noise.calibration import resolve_counts

            try:
                counts = resolve_counts([frame], gain=gain, offset=offset, assume_offset=0.0)
                gain, offset = counts.gain, counts.offset
            except InvalidInput:  # nothing to estimate from (a constant frame): counts as they are
                gain, offset = (1.0 if gain is None else gain), (0.0 if offset is None else offset)
        return AffineMap(offset, gain)
    raise CardError(f"normalization kind {kind!r} is not known to this emdenoise; upgrade emdenoise.")
