"""Input normalisations the model cards declare, applied per frame before tiling.

Statistics come from the whole frame so that every tile of it sees the same mapping:
this is what makes a tiled result equal the untiled one. Statistics are computed in
float64 (float32 sums of data near +-3.4e38 overflow). Both directions of the map run in
float32, element by element, with the shift split into two float32 parts (hi + lo) so that
a shift float32 cannot hold exactly (an offset of 100.3) costs no more than the rounding
of each operation; an element that float32 arithmetic turns into inf or NaN (a difference
of values near +-3.4e38) is computed again in float64, and a result that float32 still
cannot hold is refused, never returned as inf or NaN. Each element's value depends only
on that element, so tiles, chunks and whole frames agree bit for bit.
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

    def forward(self, frame: np.ndarray, *, where: str = "the frame", out: np.ndarray | None = None) -> np.ndarray:
        """Normalise ``frame`` (float32 out, into ``out`` when given); refuse values the model's
        float32 cannot hold."""
        frame = np.asarray(frame)
        exact = lambda x: (np.asarray(x, np.float64) - self.shift) / self.scale  # noqa: E731
        scale = _normal_float32(self.scale)
        if scale is None:
            return _into(_finite_float32(exact(frame), where, "normalised"), out)
        hi, lo = _split(self.shift)
        with np.errstate(over="ignore", invalid="ignore"):
            result = np.subtract(frame, hi, out=out, dtype=np.float32, casting="unsafe")
            if lo:
                result -= lo
            result /= scale
        if frame.dtype.kind in "ui" and frame.dtype.itemsize <= 2 and (1 << 16) + abs(self.shift) < 1e37 * abs(float(scale)):
            return result  # 16-bit integers: every result is finite (no check needed)
        return _repair(result, frame, exact, where, "normalised")

    def inverse(self, frame: np.ndarray, *, where: str = "the frame", out: np.ndarray | None = None) -> np.ndarray:
        """Map a model output back to the frame's values (float32 out, into ``out`` when given;
        ``frame`` is left as it is), refusing overflow."""
        frame = np.asarray(frame)
        exact = lambda x: np.asarray(x, np.float64) * self.scale + self.shift  # noqa: E731
        scale = _normal_float32(self.scale)
        if scale is None:
            return _into(_finite_float32(exact(frame), where, "denoised"), out)
        hi, lo = _split(self.shift)
        with np.errstate(over="ignore", invalid="ignore"):
            result = np.multiply(frame, scale, out=out, dtype=np.float32, casting="unsafe")
            result += hi
            if lo:
                result += lo
        return _repair(result, frame, exact, where, "denoised")


def _normal_float32(value: float) -> np.float32 | None:
    """``value`` as float32 when it is a finite normal float32 number, else None (float64 then)."""
    with np.errstate(over="ignore"):
        single = np.float32(value)
    return single if np.isfinite(single) and abs(single) >= np.finfo(np.float32).tiny else None


def _split(value: float) -> tuple[np.float32, np.float32]:
    """``value`` as float32 ``hi + lo`` (``lo`` 0 when float32 holds it; ``hi`` inf when float32
    cannot hold it, which sends every element to the float64 repair)."""
    with np.errstate(over="ignore"):
        hi = np.float32(value)
    if not np.isfinite(hi):
        return hi, np.float32(0)
    return hi, np.float32(float(value) - float(hi))


def _into(values: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return values
    out[...] = values
    return out


def _repair(result: np.ndarray, source: np.ndarray, exact, where: str, what: str) -> np.ndarray:
    """Recompute in float64 the elements of ``result`` that float32 arithmetic made inf or NaN
    (``exact(source elements)``), refusing those float32 cannot hold."""
    if np.isfinite(result).all():
        return result
    bad = ~np.isfinite(result)
    result[bad] = _finite_float32(exact(np.broadcast_to(source, result.shape)[bad]), where, what)
    return result


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


def _mean(frame: np.ndarray) -> float:
    """``frame.mean(dtype=float64)``, the same number; small integer frames sum each column in
    32-bit integers (no float64 conversion of every pixel: 0.10 instead of 0.27 ms at 1024^2).
    Integer sums below 2**53 are exact in float64 too, and both divide once, correctly rounded."""
    if frame.ndim == 2 and frame.dtype.name in ("uint8", "uint16", "int8", "int16") and frame.shape[0] < 1 << 15:
        accumulator = np.uint32 if frame.dtype.kind == "u" else np.int32
        return int(frame.sum(axis=0, dtype=accumulator).sum(dtype=np.int64)) / frame.size
    return float(frame.mean(dtype=np.float64))


def _safe_scale(value: float) -> float:
    return float(value) if np.isfinite(value) and value > 0 else 1.0


def fit_normalization(frame: np.ndarray, spec: dict[str, Any], **calibration: float) -> AffineMap:
    """Return the affine map a card's ``normalization`` asks for, fitted to ``frame``.

    Parameters
    ----------
    frame : ndarray
        2-D float32 frame (or integers float32 holds exactly: the same map).
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
        return AffineMap(low, _safe_scale(_mean(frame) - low))
    if kind == "range01":
        low = float(frame.min())
        return AffineMap(low, _safe_scale(float(frame.max()) - low))
    if kind == "counts":
        checked = check_job_options(gain=calibration.get("gain"), offset=calibration.get("offset"))
        gain, offset = checked["gain"], checked["offset"]
        if gain is None or offset is None:
            from emdenoise.noise.calibration import resolve_counts

            try:
                counts = resolve_counts([np.asarray(frame, np.float32)], gain=gain, offset=offset, assume_offset=0.0)
                gain, offset = counts.gain, counts.offset
            except InvalidInput:  # nothing to estimate from (a constant frame): counts as they are
                gain, offset = (1.0 if gain is None else gain), (0.0 if offset is None else offset)
        return AffineMap(offset, gain)
    raise CardError(f"normalization kind {kind!r} is not known to this emdenoise; upgrade emdenoise.")
