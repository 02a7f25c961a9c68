"""Dose models of seed 001 (Ede) and seed 003 (SBD), checked against their definitions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emdenoise.errors import InvalidInput
from emdenoise.noise import (
    apply_dose,
    dihedral,
    downsample_area,
    ede_noisy_pair,
    random_training_crop,
    sample_dose_scale,
    scale_to_dose,
    scale_to_unit,
)


def test_low_dose_law_is_25_plus_exponential_75():
    rng = np.random.default_rng(0)
    s = np.array([sample_dose_scale("low", rng) for _ in range(20000)])
    assert s.min() >= 25.0
    excess = s - 25.0
    # Exponential(beta=75): mean 75, std 75, median 75 ln 2.
    assert excess.mean() == pytest.approx(75.0, rel=0.03)
    assert excess.std() == pytest.approx(75.0, rel=0.04)
    assert np.median(excess) == pytest.approx(75.0 * np.log(2), rel=0.04)


def test_released_benchmark_law_is_uniform_25_to_100():
    rng = np.random.default_rng(1)
    s = np.array([sample_dose_scale("low", rng, law="released-benchmark") for _ in range(5000)])
    assert 25.0 <= s.min() and s.max() <= 100.0
    assert s.mean() == pytest.approx(62.5, rel=0.02)


def test_ordinary_dose_law_is_uniform_200_to_2500():
    rng = np.random.default_rng(2)
    s = np.array([sample_dose_scale("ordinary", rng) for _ in range(5000)])
    assert 200.0 <= s.min() and s.max() <= 2500.0
    assert s.mean() == pytest.approx(1350.0, rel=0.02)
    assert s.std() == pytest.approx(2300.0 / np.sqrt(12.0), rel=0.03)


def test_unknown_dose_is_a_clear_error():
    with pytest.raises(InvalidInput, match="low"):
        sample_dose_scale("high", np.random.default_rng(0))


def test_ede_pair_noisy_is_minmax_counts_and_truth_matches_noisy_mean():
    rng = np.random.default_rng(3)
    clean = np.linspace(0.0, 1.0, 64)[None, :] * np.ones((64, 1)) * 500 + 20  # any scale
    pair = ede_noisy_pair(clean, 60.0, rng)
    assert pair.noisy.dtype == np.float32 and pair.truth.dtype == np.float32
    assert pair.noisy.min() == 0.0 and pair.noisy.max() == 1.0
    # noisy * span recovers integer counts (up to the minimum count).
    counts = pair.noisy.astype(np.float64) * pair.counts_per_unit
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    assert pair.truth.mean() == pytest.approx(pair.noisy.mean(), rel=1e-5)
    # truth is proportional to the [0, 1] clean crop
    ratio = pair.truth[:, 1:] / scale_to_unit(clean)[:, 1:]
    assert np.ptp(ratio) < 1e-5


def test_ede_pair_counts_are_poisson_at_the_scale():
    rng = np.random.default_rng(4)
    clean = np.full((256, 256), 0.5)
    clean[0, 0], clean[-1, -1] = 0.0, 1.0  # fix the [0, 1] mapping
    pair = ede_noisy_pair(clean, 80.0, rng)
    counts = pair.noisy.astype(np.float64)[1:-1, 1:-1] * pair.counts_per_unit
    # Poisson(40) shifted by the minimum count: variance equals the mean of the raw counts.
    assert counts.var() == pytest.approx(40.0, rel=0.05)


def test_downsample_area_matches_opencv_inter_area():
    rng = np.random.default_rng(5)
    image = rng.random((64, 48)).astype(np.float32)
    ours = downsample_area(image, 2)
    theirs = cv2.resize(image, (24, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_dihedral_gives_eight_distinct_orientations():
    image = np.arange(9).reshape(3, 3)
    variants = {dihedral(image, k).tobytes() for k in range(8)}
    assert len(variants) == 8


def test_training_crop_is_unit_range_and_sized():
    rng = np.random.default_rng(6)
    micrograph = rng.random((300, 280)) * 1000 + 2500
    crop = random_training_crop(micrograph, rng, size=128, downsample=2)
    assert crop.shape == (128, 128)
    assert crop.min() == 0.0 and crop.max() == 1.0


def test_training_crop_too_small_says_what_to_do():
    with pytest.raises(InvalidInput, match="--crop"):
        random_training_crop(np.ones((100, 100)), np.random.default_rng(0), size=512)


def test_sbd_vacuum_scaling_and_poisson_counts():
    rng = np.random.default_rng(7)
    clean = np.ones((256, 256))
    clean[:, 128:] = 3.0  # vacuum level 1 on the left
    noisy, expected = apply_dose(clean, 0.45, rng, reference=1.0)
    assert expected[:, :128].mean() == pytest.approx(0.45)
    assert expected[:, 128:].mean() == pytest.approx(1.35)
    assert noisy[:, :128].mean() == pytest.approx(0.45, rel=0.03)
    assert noisy[:, :128].var() == pytest.approx(0.45, rel=0.05)
    assert np.array_equal(noisy, np.round(noisy))


def test_dose_defaults_to_the_image_mean():
    expected = scale_to_dose(np.array([[1.0, 3.0]]), 10.0)
    assert expected.mean() == pytest.approx(10.0)


def test_negative_clean_image_is_refused():
    with pytest.raises(InvalidInput, match="offset"):
        scale_to_dose(np.array([[-1.0, 3.0]]), 1.0)
