"""Input normalisations the model cards declare, applied per frame before tiling.

Statistics come from the whole frame so that every tile of it sees the same mapping:
this is what makes a tiled result equal the untiled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emdenoise.engine.cards import CardError


@dataclass(frozen=True)
class AffineMap:
    """``normalised = (raw - shift) / scale`` and its inverse."""

    shift: float
    scale: float

    def forward(self, frame: np.ndarray) -> np.ndarray:
        return ((frame - self.shift) / self.scale).astype(np.float32, copy=False)

    def inverse(self, frame: np.ndarray) -> np.ndarray:
        return (frame * self.scale + self.shift).astype(np.float32, copy=False)


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
          ``gain`` and ``offset`` come from ``calibration`` (default 1 and 0).
    **calibration : float
        ``gain`` and ``offset`` for the counts normalisation.

    Returns
    -------
    AffineMap
    """
    kind = spec.get("kind", "none")
    if kind == "none":
        return AffineMap(0.0, 1.0)
    if kind == "min-mean":
        low = float(frame.min())
        return AffineMap(low, _safe_scale(float(frame.mean()) - low))
    if kind == "range01":
        low = float(frame.min())
        return AffineMap(low, _safe_scale(float(frame.max()) - low))
    if kind == "counts":
        gain = calibration.get("gain") or 1.0
        offset = calibration.get("offset") or 0.0
        return AffineMap(float(offset), _safe_scale(float(gain)))
    raise CardError(f"normalization kind {kind!r} is not known to this emdenoise; upgrade emdenoise.")
