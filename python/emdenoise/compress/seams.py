"""How visible the tile borders of a decoded frame are.

A seam is a step between the last row (column) of one tile and the first of the next that
the image itself does not have. :func:`seam_ratio` compares the mean absolute difference
of neighbouring pixels across tile borders with the same statistic between neighbouring
pixels inside the tiles; 1 means the borders are indistinguishable from the interior.
Dividing by the same ratio of a reference image (the clean image, or the original)
removes what the content itself contributes.
"""

from __future__ import annotations

import numpy as np


def _border_and_inner(image: np.ndarray, tile: int, band: int) -> tuple[float, float]:
    image = np.asarray(image, np.float64)
    border, inner = [], []
    for axis in (0, 1):
        steps = np.abs(np.diff(image, axis=axis))  # steps[k] is between pixel k and k + 1
        after = np.arange(steps.shape[axis]) + 1  # the step into pixel ``after``
        borders = np.arange(tile, image.shape[axis], tile)  # first pixel of each following tile
        at_border = np.zeros(after.shape, bool)
        for first in borders:
            at_border |= np.abs(after - first) <= band
        moved = np.moveaxis(steps, axis, 0)
        if at_border.any():
            border.append(moved[at_border].ravel())
        inner.append(moved[~at_border].ravel())
    if not border:
        return float("nan"), float(np.mean(np.concatenate(inner)))
    return float(np.mean(np.concatenate(border))), float(np.mean(np.concatenate(inner)))


def seam_ratio(image: np.ndarray, tile: int, *, reference: np.ndarray | None = None, band: int = 0) -> float:
    """Mean |step| across tile borders over mean |step| inside tiles (NaN for a single tile).

    Parameters
    ----------
    image : ndarray
        A decoded 2-D frame.
    tile : int
        Tile side the frame was cut into (seed 002, sec. 2: 160).
    reference : ndarray, optional
        The same frame without tiling (clean image or original): the result is divided by
        the reference's own ratio, so 1.0 means no seam beyond what the content has.
    band : int
        Also count the ``band`` steps on each side of a border as border steps, so that a
        step spread over a few pixels (feathered) still counts as a seam.

    Returns
    -------
    float
    """
    border, inner = _border_and_inner(image, tile, band)
    ratio = border / inner if inner > 0 else float("nan")
    if reference is not None:
        ref_border, ref_inner = _border_and_inner(reference, tile, band)
        ratio /= ref_border / ref_inner if ref_inner > 0 and ref_border > 0 else float("nan")
    return float(ratio)


def level_seams(mosaic: np.ndarray, tile: int, *, width: int = 4, smooth: float = 2.0) -> np.ndarray:
    """Remove the steps at tile borders of a decoded mosaic, feathered over ``width`` px.

    Each tile of seed 002's autoencoders is normalised and decoded on its own, so
    neighbouring tiles disagree slightly about the level at their common border. For
    every border the step that the local gradient does not explain,
    ``(x[b] - x[b-1]) - ((x[b-1] - x[b-2]) + (x[b+1] - x[b])) / 2``, is smoothed along
    the border (Gaussian, ``smooth`` px) and taken out half on each side with weights
    falling linearly from the border to zero at ``width`` px. Content varying along the
    border faster than ``smooth`` is left alone; nothing away from borders changes.

    Parameters
    ----------
    mosaic : ndarray
        Decoded tiles stitched into a ``(rows * tile, cols * tile)`` float32 array.
    tile : int
        Tile side.
    width : int
        Pixels on each side of a border over which the correction fades out.
    smooth : float
        Gaussian sigma (px) along the border applied to the measured step.

    Returns
    -------
    ndarray
        A corrected copy (float32).
    """
    from scipy.ndimage import gaussian_filter1d

    out = np.array(mosaic, dtype=np.float32, copy=True)
    w = max(1, min(int(width), tile // 2))
    ramp = (1.0 - np.arange(w, dtype=np.float32) / w) / 2.0
    for axis in (0, 1):
        view = np.moveaxis(out, axis, 0)  # borders between rows of this view
        for b in range(tile, view.shape[0], tile):
            lo, hi = view[b - 2 : b].astype(np.float64), view[b : b + 2].astype(np.float64)
            step = (hi[0] - lo[1]) - ((lo[1] - lo[0]) + (hi[1] - hi[0])) / 2.0
            if smooth > 0:
                step = gaussian_filter1d(step, smooth, mode="nearest")
            step = step.astype(np.float32)
            view[b - w : b] += ramp[::-1, None] * step[None]
            view[b : b + w] -= ramp[:, None] * step[None]
    return out
