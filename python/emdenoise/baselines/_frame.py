"""Input checks and intensity scaling shared by the classical baselines."""

from __future__ import annotations

from typing import Callable

import numpy as np

from emdenoise.errors import InvalidInput


def as_frame(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a finite 2D float64 array or raise :class:`InvalidInput`."""
    data = np.asarray(image)
    if data.ndim != 2:
        raise InvalidInput(
            f"Classical baselines take one 2D frame, got shape {data.shape}; pass frames one at a time."
        )
    if data.size == 0:
        raise InvalidInput("The frame is empty; pass an image with pixels.")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise InvalidInput(f"Pixels of dtype {data.dtype} are not real numbers; pass a real image.")
    data = data.astype(np.float64)
    if not np.isfinite(data).all():
        raise InvalidInput("The frame contains NaN or infinite pixels; replace them before denoising.")
    return data


def on_unit_range(image: np.ndarray, filt: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run ``filt`` on the frame min-max mapped to [0, 1] and map the result back.

    Seed 001 benchmarked every filter on crops linearly transformed to [0, 1]
    (sec. 3.1); parameters such as bilateral sigma 75 or TV weight 0.1 are defined on that
    scale. A constant frame is returned unchanged.

    Returns
    -------
    ndarray of float32
        The filtered frame in the input's intensity units.
    """
    data = as_frame(image)
    lo, hi = float(data.min()), float(data.max())
    if hi == lo:
        return data.astype(np.float32)
    unit = ((data - lo) / (hi - lo)).astype(np.float32)
    out = np.asarray(filt(unit), dtype=np.float64)
    return (out * (hi - lo) + lo).astype(np.float32)


def to_counts(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """Convert detector readings to counts: ``(image - offset) / gain``."""
    if not gain > 0:
        raise InvalidInput(f"Detector gain must be positive, got {gain}; pass counts per electron.")
    return (as_frame(image) - offset) / gain


def from_counts(counts: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """Convert counts back to detector readings, as float32."""
    return (np.asarray(counts, dtype=np.float64) * gain + offset).astype(np.float32)
