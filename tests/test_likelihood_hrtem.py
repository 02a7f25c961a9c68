"""Seed 003 Fig. 4 on simulated HRTEM (abTEM, the simulation issue's Pt-on-CeO2 images).

A column copied into the vacuum beside the particle (the spurious atom of Fig. 4) must be
contradicted by the raw counts, true columns supported. How often either can happen is
fixed by Poisson statistics for each region's size and contrast
(:func:`emdenoise.likelihood.validation.support_probability`); the test checks the
measured rates against those exact expectations at the paper's 0.45 counts/px, and the
95 % rates at the dose where the expectation allows them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emdenoise.likelihood.validation import SBD_DOSE, fig4_trial, summarise
from emdenoise.simulate.generate import make_item
from emdenoise.simulate.hrtem import HrtemConfig
from emdenoise.simulate.optics import HrtemOptics

# The paper's 5 nm cell and 0.1 Å pixels (512 x 512); 3 focal-spread samples and 4 Å
# slices keep one image near 5 s on one core.
CONFIG = HrtemConfig(optics=HrtemOptics(focal_samples=3, slice_thickness_a=4.0))
DRAWS = 8


@pytest.fixture(scope="module")
def hrtem_images():
    """Two simulated nanoparticles (seed 3, items 0 and 1) with their Pt column centres."""
    images = []
    for index in range(2):
        clean, _, record = make_item("hrtem", CONFIG, 3, index)
        images.append((clean.astype(np.float64), np.asarray(record["pt_columns_rc"], float)))
    return images


def _trials(images, dose):
    return [
        fig4_trial(clean, np.random.default_rng([31, image, draw]), dose=dose, particle_columns=columns)
        for image, (clean, columns) in enumerate(images)
        for draw in range(DRAWS)
    ]


def _agrees(measured: float, expected: float, n: int) -> bool:
    """Within 3 binomial standard errors (and one point) of the exact expectation."""
    return abs(measured - expected) <= 3 * math.sqrt(max(expected * (1 - expected), 1e-4) / n) + 0.01


@pytest.mark.parametrize("dose", [SBD_DOSE, 4 * SBD_DOSE])
def test_fig4_on_simulated_hrtem_matches_the_poisson_limit(hrtem_images, dose):
    summary = summarise(_trials(hrtem_images, dose))
    trials, regions = summary["trials"], summary["true_regions"]
    assert summary["spurious_detected"] == 1.0
    assert summary["particle_regions"] > 0
    assert _agrees(summary["true_supported"], summary["true_supported_expected"], regions)
    assert _agrees(summary["particle_supported"], summary["particle_supported_expected"], summary["particle_regions"])
    assert _agrees(summary["spurious_contradicted"], summary["spurious_contradicted_expected"], trials)
    # columns the test can decide at this dose (power >= 95 %) are supported 95 % of the time (within
    # 3 binomial standard errors: power is now the chance of rejecting vacuum at 5 % significance)
    decisive = summary["decisive_fraction"] * regions
    assert summary["decisive_fraction"] > 0.05
    assert summary["decisive_supported"] >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / decisive)
    # the planted column is contradicted more often than chance at the paper's dose
    assert summary["spurious_contradicted"] > 0.5 and summary["spurious_llr_median"] < 0
    if dose > SBD_DOSE:
        # at 1.8 counts/px the regions carry enough counts to reject vacuum at 5 % for ~95 % of them
        assert summary["true_supported"] >= 0.93
        assert summary["spurious_contradicted"] >= 0.95
