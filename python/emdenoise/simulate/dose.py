"""From simulated intensity to counts: binning, vacuum level, dose scaling, shot noise.

Seed 003, section 4 and appendix A.1: images simulated on a fine grid are binned to the
detector pixel size, then scaled so that the vacuum level equals the dose of one
experimental frame (0.45 counts/px), and the noisy image is a Poisson draw of it
(appendix B). Shot noise is drawn here with :meth:`numpy.random.Generator.poisson`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

SBD_DOSE = 0.45  # counts per pixel in vacuum, one 0.025 s K2 frame (seed 003, sec. 4)


def bin_sum(image, factor: int):
    """Sum ``factor`` x ``factor`` blocks of the last two axes (counts are conserved).

    Rows/columns that do not fill a whole block are dropped. Works on NumPy and CuPy
    arrays alike (only ``reshape`` and ``sum`` are used).

    Parameters
    ----------
    image : array, shape (..., H, W)
    factor : int
        Block side; 1 returns the input.

    Returns
    -------
    array, shape (..., H // factor, W // factor)
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"bin factor must be >= 1, got {factor}")
    if factor == 1:
        return image
    *lead, h, w = image.shape
    h2, w2 = h // factor, w // factor
    cropped = image[..., : h2 * factor, : w2 * factor]
    return cropped.reshape(*lead, h2, factor, w2, factor).sum(axis=(-3, -1))


def binned_pixel_xy(shape: tuple[int, int], sampling: float, factor: int, fine_rows: int):
    """Physical (x, y) of pixel centres of a binned ``[row, col]`` image [Å].

    The fine grid samples x = i * sampling (abTEM's convention); rows run downwards
    from the top of the cell (see :func:`emdenoise.simulate.optics.to_image_rows`).

    Returns
    -------
    x : ndarray, shape (W,)
    y : ndarray, shape (H,)
    """
    rows, cols = shape
    half = (factor - 1) / 2.0
    x = (np.arange(cols) * factor + half) * sampling
    y = (fine_rows - 1 - np.arange(rows) * factor - half) * sampling
    return x, y


def vacuum_mask(
    atom_xy: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    cell: tuple[float, float],
    min_distance: float = 5.0,
) -> np.ndarray:
    """Pixels farther than ``min_distance`` from every projected atom (periodic cell).

    Parameters
    ----------
    atom_xy : ndarray, shape (n, 2)
        Projected atom positions [Å].
    x, y : ndarray
        Pixel-centre coordinates along columns and rows [Å].
    cell : (float, float)
        Periodic cell lengths along x and y [Å].
    min_distance : float
        Distance beyond which a pixel counts as vacuum [Å]; 5 Å keeps out the strongest
        Fresnel fringes at edges.

    Returns
    -------
    ndarray of bool, shape (len(y), len(x))
    """
    box = np.asarray(cell, dtype=float)
    tree = cKDTree(np.mod(atom_xy, box), boxsize=box)
    xx, yy = np.meshgrid(np.mod(x, box[0]), np.mod(y, box[1]))
    dist, _ = tree.query(np.stack([xx.ravel(), yy.ravel()], axis=1), k=1)
    return (dist > min_distance).reshape(len(y), len(x))


def scale_to_dose(image: np.ndarray, mask: np.ndarray, dose: float) -> tuple[np.ndarray, float]:
    """Scale ``image`` so that its mean over ``mask`` equals ``dose``.

    Returns
    -------
    scaled : ndarray, float32
    factor : float
        The multiplier that was applied.
    """
    if not np.any(mask):
        raise ValueError("no vacuum pixels to set the dose from; enlarge the cell")
    level = float(np.mean(image[mask], dtype=np.float64))
    factor = dose / level
    return (image * factor).astype(np.float32), factor


def shot_noise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw Poisson counts with mean ``clean`` (seed 003 appendix B), as float32."""
    return rng.poisson(np.clip(clean, 0, None)).astype(np.float32)
