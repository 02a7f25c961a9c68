"""Poisson dose models of the seed papers.

* :mod:`emdenoise.noise.ede` - Ede & Beanland (seed 001, sec. 3.1): low dose
  ``25 + Exp(75)``, ordinary dose ``U(200, 2500)``, [0, 1] crops, truth rescaled to the
  noisy mean; training-crop preparation.
* :mod:`emdenoise.noise.dose` - SBD (seed 003): clean image in counts (0.45 counts/px
  in vacuum) then ``Poisson(clean)``; the same with any dose for users' data.
"""

from emdenoise.noise.dose import SBD_VACUUM_COUNTS, apply_dose, poisson_counts, scale_to_dose
from emdenoise.noise.ede import (
    CROP_SIZE,
    DOSES,
    NoisyPair,
    dihedral,
    downsample_area,
    ede_noisy_pair,
    random_training_crop,
    sample_dose_scale,
    scale_to_unit,
)

__all__ = [
    "CROP_SIZE",
    "DOSES",
    "NoisyPair",
    "SBD_VACUUM_COUNTS",
    "apply_dose",
    "dihedral",
    "downsample_area",
    "ede_noisy_pair",
    "poisson_counts",
    "random_training_crop",
    "sample_dose_scale",
    "scale_to_dose",
    "scale_to_unit",
]
