"""Likelihood maps on counts the estimate never saw, and the vacuum finder on a plain strip (issue 21, item 4)."""

from __future__ import annotations

import numpy as np

from emdenoise.client.embedded import EmbeddedClient
from emdenoise.likelihood import VACUUM_LABEL
from emdenoise.likelihood.holdout import thin_counts


def strip_lattice(amp: float = 3.0, level: float = 1.8, seed: int = 0):
    """256x256: columns (sigma 2 px, 12 px apart) on ``level`` counts/px, a plain vacuum strip at x >= 180."""
    yy, xx = np.mgrid[:256, :256]
    clean = np.full((256, 256), level)
    for r in range(6, 256, 12):
        for c in range(6, 180, 12):
            clean += amp * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 2.0**2))
    return clean, np.random.default_rng(seed).poisson(clean).astype(np.uint16)


def test_thinning_splits_counts_into_independent_halves_at_p_and_1_minus_p():
    counts = np.random.default_rng(1).poisson(4.0, (256, 256))
    first, second = thin_counts(counts, 0.3)
    assert (first + second == counts).all() and first.min() >= 0 and second.min() >= 0
    assert abs(first.mean() - 0.3 * 4.0) < 0.03 and abs(second.mean() - 0.7 * 4.0) < 0.03
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.02  # Poisson thinning: independent


def test_vacuum_strip_beside_a_lattice_at_1_8_counts_is_found():
    clean, noisy = strip_lattice()
    result = EmbeddedClient(device="cpu").likelihood(noisy, None, "classical-gaussian3")
    vacuum = result.labels == VACUUM_LABEL
    # the strip's pixels not labelled vacuum are the (noise) blob regions on trial inside it
    in_strip = vacuum[:, 200:] | (result.labels[:, 200:] > 0)
    assert in_strip.mean() > 0.95 and vacuum[:, :170].mean() < 0.02, (in_strip.mean(), vacuum[:, :170].mean())
    assert "never saw" in result.message
    assert abs(result.vacuum_level - 0.5 * 1.8) < 0.05  # tested on the other half: dose (1 - p) x


def test_held_out_counts_flag_noise_blobs_in_the_vacuum():
    """Same counts: 59 % of the vacuum blobs not supported even with the 5 % significance decision (the
    estimate's blobs are fitted to the counts they are tested on); held-out half: 97 % (the issue's bar,
    95 %, is the decision's significance; see ``emdenoise bench likelihood``)."""
    clean, noisy = strip_lattice()
    client = EmbeddedClient(device="cpu")
    fractions = {}
    for holdout in ("none", "thin"):
        result = client.likelihood(noisy, None, "classical-gaussian3", holdout=holdout)
        in_vacuum = [r for r in result.regions if r.col >= 190]
        columns = [r for r in result.regions if r.col < 170 and r.power >= 0.95]
        fractions[holdout] = (
            np.mean([not r.supported for r in in_vacuum]) if in_vacuum else 1.0,
            np.mean([r.supported for r in columns]),
        )
    print(fractions)
    assert fractions["none"][0] < 0.75 and fractions["thin"][0] >= 0.95
    assert fractions["thin"][1] > 0.85  # decided lattice columns stay supported
