"""Consecutive structural similarity (Noise2Atom, seed 004, eq. 10).

CSS compares two consecutive restored frames with one global SSIM term (means, variances
and covariance over the whole frame), assuming the specimen did not change between them.
It rewards blur: two constant frames score 1. Report it next to an error measure such as
:func:`emdenoise.metrics.paired_frame_mse`, never alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdenoise.errors import InvalidInput

#: Stabilising constants of eq. 10, i.e. (0.01 L)^2 and (0.03 L)^2 for intensities in [0, 1].
C1 = 1.0e-4
C2 = 9.0e-4


def css(frame_a: np.ndarray, frame_b: np.ndarray, *, c1: float = C1, c2: float = C2) -> float:
    """Consecutive structural similarity of two frames (seed 004, eq. 10).

    ``CSS = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))``
    with global (whole-frame, population) statistics.

    Parameters
    ----------
    frame_a, frame_b : ndarray
        Two restored consecutive frames on a shared [0, 1]-like intensity scale
        (see :class:`SharedScaling`); C1 and C2 assume that scale.
    c1, c2 : float
        Stabilising constants (1e-4 and 9e-4 in the paper).

    Returns
    -------
    float
        1 for identical frames.
    """
    a = np.asarray(frame_a, dtype=np.float64)
    b = np.asarray(frame_b, dtype=np.float64)
    if a.shape != b.shape:
        raise InvalidInput(f"Frames differ in shape ({a.shape} vs {b.shape}); compare frames of one series.")
    mu_a, mu_b = a.mean(), b.mean()
    var_a, var_b = a.var(), b.var()
    cov = np.mean((a - mu_a) * (b - mu_b))
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(num / den)


@dataclass(frozen=True)
class SharedScaling:
    """One affine map onto [0, 1] applied to every method's output.

    Seed 004 does not say how frames are scaled before eq. 10; since C1 and C2 are the
    SSIM constants for a unit range, the raw (noisy) series is mapped to [0, 1] by its
    own minimum and maximum, and the *same* map is applied to every method's output, so
    no method gains from rescaling its own result.
    """

    lo: float
    hi: float

    @classmethod
    def from_frames(cls, frames: np.ndarray) -> "SharedScaling":
        """The map that sends the minimum of ``frames`` to 0 and the maximum to 1."""
        data = np.asarray(frames, dtype=np.float64)
        lo, hi = float(data.min()), float(data.max())
        if hi == lo:
            raise InvalidInput("The series is constant; CSS needs frames with structure.")
        return cls(lo, hi)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Apply the map (values outside the raw range fall outside [0, 1])."""
        return (np.asarray(image, dtype=np.float64) - self.lo) / (self.hi - self.lo)
