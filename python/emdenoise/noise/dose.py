"""Poisson shot noise at a stated dose in counts per pixel.

SBD (seed 003, sec. 4 and A.1) scales a clean simulation so that its vacuum reads
0.45 counts/px (one 0.025 s frame of the real series) and samples Poisson counts from it.
The same two steps, with the dose as an argument, serve users' own clean data.
"""

from __future__ import annotations

import numpy as np

from emdenoise.errors import InvalidInput

#: Mean counts per pixel in the vacuum of one experimental SBD frame (seed 003, sec. 4).
SBD_VACUUM_COUNTS = 0.45


def scale_to_dose(
    clean: np.ndarray, dose: float, *, reference: float | None = None
) -> np.ndarray:
    """Scale a clean image so that its reference level equals ``dose`` counts/px.

    Parameters
    ----------
    clean : ndarray
        Clean, non-negative image in any units.
    dose : float
        Counts per pixel that ``reference`` should map to.
    reference : float, optional
        Intensity of the reference region in ``clean``'s units: the vacuum level for
        SBD (seed 003). When omitted the image mean is used, which for phase-contrast
        HRTEM equals the vacuum level up to aperture losses (the electron flux is
        conserved) and for any image gives a dose in mean counts/px.

    Returns
    -------
    ndarray of float64
        The clean image in expected counts per pixel.
    """
    data = np.asarray(clean, dtype=np.float64)
    if not np.isfinite(data).all():
        raise InvalidInput("The clean image contains NaN or infinite values; clean it first.")
    if data.min() < 0:
        raise InvalidInput(
            "The clean image has negative values and cannot be an expected count; "
            "subtract the detector offset first."
        )
    if dose <= 0:
        raise InvalidInput(f"Dose must be positive counts per pixel, got {dose}.")
    level = float(data.mean()) if reference is None else float(reference)
    if level <= 0:
        raise InvalidInput("The reference intensity is zero; give a positive vacuum level.")
    return data * (dose / level)


def poisson_counts(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample shot noise: ``Poisson(expected)`` per pixel (seed 003, sec. 4).

    Parameters
    ----------
    expected : ndarray
        Expected counts per pixel (non-negative).
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    ndarray of float32
        Integer-valued counts.
    """
    lam = np.asarray(expected, dtype=np.float64)
    if lam.min() < 0:
        raise InvalidInput("Expected counts must be non-negative; subtract the offset first.")
    return rng.poisson(lam).astype(np.float32)


def apply_dose(
    clean: np.ndarray,
    dose: float,
    rng: np.random.Generator,
    *,
    reference: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale a clean image to ``dose`` counts/px and sample Poisson noise.

    Parameters
    ----------
    clean : ndarray
        Clean, non-negative image.
    dose : float
        Counts per pixel at the reference level (see :func:`scale_to_dose`).
    rng : numpy.random.Generator
        Source of the draws.
    reference : float, optional
        Reference intensity (vacuum level); the image mean when omitted.

    Returns
    -------
    noisy, expected : ndarray of float32
        The Poisson counts and the clean image in counts (the ground truth).
    """
    expected = scale_to_dose(clean, dose, reference=reference)
    return poisson_counts(expected, rng), expected.astype(np.float32)
