"""Colours of a likelihood map: red where the counts support a column, blue where they contradict it.

Seed 003, Fig. 1e and Fig. 4c: "Regions in red are more likely to correspond to atomic
columns ... Regions in blue are more likely to belong to the vacuum."
"""

from __future__ import annotations

import numpy as np

SUPPORTED_RGB = (215, 38, 38)
CONTRADICTED_RGB = (33, 102, 230)


def colour_limit(llr_map: np.ndarray) -> float:
    """Symmetric colour range: the largest absolute value of the map (1 for an empty map)."""
    finite = np.abs(llr_map[np.isfinite(llr_map)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def region_rgba(value: float, limit: float, *, max_alpha: float = 0.85, min_alpha: float = 0.35) -> tuple[int, int, int, int]:
    """RGBA of one value: hue by sign, opacity growing with ``|value| / limit``."""
    strength = min(abs(float(value)) / limit, 1.0) if limit > 0 else 1.0
    alpha = min_alpha + (max_alpha - min_alpha) * strength
    rgb = SUPPORTED_RGB if value > 0 else CONTRADICTED_RGB
    return (*rgb, int(round(255 * alpha)))


def overlay_rgba(llr_map: np.ndarray, *, limit: float | None = None, max_alpha: float = 0.85, min_alpha: float = 0.35) -> np.ndarray:
    """RGBA overlay of a likelihood map (diverging: red > 0, blue <= 0, transparent at NaN).

    Parameters
    ----------
    llr_map : ndarray
        From :attr:`emdenoise.likelihood.LikelihoodResult.llr_map`.
    limit : float, optional
        Value drawn at full opacity; default :func:`colour_limit` of the map.
    max_alpha, min_alpha : float
        Opacity at ``|value| >= limit`` and at zero.

    Returns
    -------
    ndarray, uint8, shape (H, W, 4)

    Notes
    -----
    Seed 003, Fig. 1e / Fig. 4c colour convention.
    """
    limit = colour_limit(llr_map) if limit is None else float(limit)
    values = np.asarray(llr_map, dtype=np.float64)
    inside = np.isfinite(values)
    strength = np.clip(np.abs(np.where(inside, values, 0.0)) / max(limit, 1e-300), 0.0, 1.0)
    out = np.zeros(values.shape + (4,), np.uint8)
    positive = inside & (values > 0)
    negative = inside & ~positive
    out[positive, :3] = SUPPORTED_RGB
    out[negative, :3] = CONTRADICTED_RGB
    alpha = min_alpha + (max_alpha - min_alpha) * strength
    out[..., 3] = np.where(inside, np.round(255 * alpha), 0).astype(np.uint8)
    return out


def preview_rgb(image: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """The overlay composited on a grey rendering of ``image`` (0.5-99.5 % stretch), uint8 RGB."""
    values = np.asarray(image, dtype=np.float64)
    low, high = np.percentile(values, [0.5, 99.5])
    grey = np.clip((values - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    alpha = overlay[..., 3:4].astype(np.float64) / 255.0
    rgb = (1.0 - alpha) * (grey[..., None] * 255.0) + alpha * overlay[..., :3]
    return np.round(rgb).astype(np.uint8)
