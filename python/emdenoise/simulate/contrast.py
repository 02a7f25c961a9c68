"""Contrast label of atomic columns: white, black or intermediate (seed 003, section 5).

The paper's domain expert sorted images by whether the Pt columns appear brighter than
their surroundings (white), darker (black) or neither (intermediate). Here the same call
is made from the clean image: each column's mean intensity in a disc at its centre minus
the mean in a ring between it and its neighbours, in units of the vacuum level; the
image's label comes from the median over its columns.
"""

from __future__ import annotations

import numpy as np

LABELS = ("black", "intermediate", "white")


def column_contrast(
    image: np.ndarray,
    columns_rc: np.ndarray,
    pixel_size: float,
    vacuum_level: float,
    *,
    disc_radius: float = 0.4,
    ring: tuple[float, float] = (0.9, 1.3),
) -> np.ndarray:
    """Per-column contrast (disc mean - ring mean) / vacuum level.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Clean image.
    columns_rc : ndarray, shape (n, 2)
        Column centres as fractional (row, col).
    pixel_size : float
        [Å per pixel].
    vacuum_level : float
        Mean vacuum intensity of ``image``.
    disc_radius : float
        Radius of the centre disc [Å]; at least the nearest pixel is used.
    ring : (float, float)
        Inner and outer radius of the background ring [Å]; the ring reaches about half
        way to the nearest neighbour column of Pt [110] (2.4 Å).

    Returns
    -------
    ndarray, shape (n,)
    """
    h, w = image.shape
    r_out = int(np.ceil(ring[1] / pixel_size)) + 1
    offs = np.arange(-r_out, r_out + 1)
    out = np.full(len(columns_rc), np.nan)
    for k, (r, c) in enumerate(np.asarray(columns_rc, dtype=float)):
        rr = np.round(r).astype(int) + offs[:, None]
        cc = np.round(c).astype(int) + offs[None, :]
        if rr.min() < 0 or cc.min() < 0 or rr.max() >= h or cc.max() >= w:
            continue
        d = np.hypot(rr - r, cc - c) * pixel_size
        patch = image[rr, cc]
        disc = d <= max(disc_radius, 0.5 * pixel_size * np.sqrt(2))
        annulus = (d >= ring[0]) & (d <= ring[1])
        if not disc.any() or not annulus.any():
            continue
        out[k] = (patch[disc].mean() - patch[annulus].mean()) / vacuum_level
    return out


def contrast_label(contrast: np.ndarray, threshold: float = 0.05) -> str:
    """Label an image from its per-column contrasts.

    ``white`` when the median contrast exceeds ``threshold`` (5 % of the vacuum level),
    ``black`` below ``-threshold``, ``intermediate`` otherwise (also when no column
    could be measured).
    """
    values = np.asarray(contrast, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "intermediate"
    median = float(np.median(values))
    if median > threshold:
        return "white"
    if median < -threshold:
        return "black"
    return "intermediate"
