"""Seeded synthetic clean images: crystalline particles of Gaussian atom columns in vacuum.

A stand-in clean set for the benchmarks until simulated HRTEM/STEM data exist (and for
tests): each image is a vacuum level of 1.0 with a particle region that holds a lattice
(square with a second, weaker column at the cell centre, as a perovskite in projection, or
hexagonal) of Gaussian columns whose heights vary a little from column to column, plus a
weak smooth thickness background inside the particle. Columns are bright (white contrast,
as HAADF or SBD's chosen HRTEM subset) or dark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

VACUUM_LEVEL = 1.0


@dataclass(frozen=True)
class LatticeImage:
    """One synthetic clean image and how it was made.

    Attributes
    ----------
    image : ndarray of float32
        Clean intensities; vacuum reads :data:`VACUUM_LEVEL`.
    vacuum_level : float
        Intensity of the vacuum region.
    params : dict
        The drawn lattice parameters (for result files).
    """

    image: np.ndarray
    vacuum_level: float = VACUUM_LEVEL
    params: dict[str, Any] = field(default_factory=dict)


def _column_heights(ij: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-column height factor looked up from integer lattice indices (stable per column)."""
    n = table.shape[0]
    return table[np.mod(ij[..., 0], n), np.mod(ij[..., 1], n)]


def synthetic_lattice(
    size: int,
    rng: np.random.Generator,
    *,
    amplitude: tuple[float, float] = (0.3, 0.8),
    bright_fraction: float = 0.7,
) -> LatticeImage:
    """Draw one clean lattice image.

    Parameters
    ----------
    size : int
        Side in pixels.
    rng : numpy.random.Generator
        Source of every random choice (seed it for reproducible sets).
    amplitude : (float, float)
        Range of the column peak height relative to the vacuum level.
    bright_fraction : float
        Probability of bright (rather than dark) columns; dark columns are clipped at
        2 % of the vacuum level, so keep ``amplitude`` below 1 when it is not 1.

    Returns
    -------
    LatticeImage
    """
    spacing = float(rng.uniform(0.022, 0.05) * size) if size >= 128 else float(rng.uniform(6.0, 10.0))
    spacing = max(spacing, 6.0)
    kind = "square+centre" if rng.random() < 0.5 else "hexagonal"
    theta = float(rng.uniform(0, np.pi))
    sigma = float(rng.uniform(0.09, 0.16) * spacing)
    amplitude_ = float(rng.uniform(*amplitude))
    bright = bool(rng.random() < bright_fraction)
    second = float(rng.uniform(0.3, 0.7))

    a1 = spacing * np.array([np.cos(theta), np.sin(theta)])
    turn = np.pi / 2 if kind == "square+centre" else np.pi / 3
    a2 = spacing * np.array([np.cos(theta + turn), np.sin(theta + turn)])
    basis = np.stack([a1, a2], axis=1)  # columns are the lattice vectors (x, y)
    inv = np.linalg.inv(basis)
    origin = rng.uniform(0, spacing, size=2)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = np.stack([xx - origin[0], yy - origin[1]], axis=-1)
    heights = 1.0 + 0.08 * rng.standard_normal((64, 64))
    sites = [(np.zeros(2), 1.0)]
    if kind == "square+centre":
        sites.append((np.array([0.5, 0.5]), second))

    columns = np.zeros((size, size))
    for frac, weight in sites:
        uv = pts @ inv.T - frac
        nearest = np.rint(uv)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ij = nearest + np.array([di, dj])
                centre = (ij + frac) @ basis.T
                d2 = np.sum((pts - centre) ** 2, axis=-1)
                h = _column_heights(ij.astype(np.int64), heights)
                columns += weight * h * np.exp(-d2 / (2 * sigma**2))

    # Particle: a smoothed random blob covering roughly 30-70 % of the field.
    blob = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 8, mode="wrap")
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    radial = np.hypot(yy - cy, xx - cx) / size
    field_ = blob / (blob.std() + 1e-12) * 0.08 - radial
    mask = field_ > np.quantile(field_, rng.uniform(0.3, 0.7))
    mask = ndimage.gaussian_filter(mask.astype(np.float64), 1.0)

    thickness = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 16, mode="wrap")
    thickness = 0.03 * thickness / (thickness.std() + 1e-12)

    sign = 1.0 if bright else -1.0
    image = VACUUM_LEVEL + sign * mask * (amplitude_ * columns + thickness)
    image = np.maximum(image, 0.02)
    params = {
        "lattice": kind,
        "spacing_px": round(spacing, 3),
        "angle_deg": round(float(np.degrees(theta)), 2),
        "column_sigma_px": round(sigma, 3),
        "amplitude": round(amplitude_, 3),
        "contrast": "bright" if bright else "dark",
    }
    return LatticeImage(image.astype(np.float32), VACUUM_LEVEL, params)


def synthetic_set(n: int, size: int, seed: int, **options: Any) -> list[LatticeImage]:
    """``n`` reproducible lattice images of ``size x size`` pixels from ``seed``.

    ``options`` go to :func:`synthetic_lattice` (``amplitude``, ``bright_fraction``).
    """
    return [synthetic_lattice(size, np.random.default_rng([seed, 7919, i]), **options) for i in range(n)]
