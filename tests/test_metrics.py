"""Metrics: MSE/PSNR/SSIM conventions, MAE maps, CSS (seed 004 eq. 10), paired-frame error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

from emdenoise.errors import InvalidInput
from emdenoise.metrics import (
    MeanAbsErrorMap,
    SharedScaling,
    css,
    mse,
    paired_frame_mse,
    psnr,
    ssim_ede,
    ssim_sbd,
)


def _scene(size: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return 1.0 + 0.8 * np.sin(2 * np.pi * 5 * x) ** 2 * np.cos(2 * np.pi * 3 * y) ** 2


def test_mse_and_psnr_with_the_clean_range_as_peak():
    truth = _scene()
    noisy = truth + np.random.default_rng(0).normal(0, 0.1, truth.shape)
    assert mse(noisy, truth) == pytest.approx(np.mean((noisy - truth) ** 2))
    expected = 10 * np.log10(np.ptp(truth) ** 2 / mse(noisy, truth))
    assert psnr(noisy, truth) == pytest.approx(expected)
    assert psnr(noisy, truth) == pytest.approx(
        peak_signal_noise_ratio(truth, noisy, data_range=np.ptp(truth)))
    assert psnr(truth, truth) == float("inf")


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(InvalidInput, match="shape"):
        mse(np.ones((4, 4)), np.ones((4, 5)))


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    truth = _scene()
    noisy = truth + np.random.default_rng(1).normal(0, 0.2, truth.shape)
    assert ssim_ede(truth, truth) == pytest.approx(1.0)
    assert ssim_sbd(truth, truth) == pytest.approx(1.0)
    assert ssim_ede(noisy, truth) < 0.9 and ssim_sbd(noisy, truth) < 0.9


def test_ede_ssim_uses_the_output_range_and_sbd_the_clean_range():
    truth = _scene()
    halved = 0.5 * (truth - truth.min()) + truth.min()
    # SSIM's constants scale with data_range: the two conventions disagree on a rescaled output.
    assert ssim_ede(halved, truth) != pytest.approx(ssim_sbd(halved, truth), abs=1e-3)
    # a constant output falls back to the clean range instead of dividing by zero
    assert np.isfinite(ssim_ede(np.full_like(truth, 1.2), truth))


def test_mean_abs_error_map_averages_per_pixel():
    acc = MeanAbsErrorMap()
    truth = np.zeros((3, 3))
    acc.add(np.full((3, 3), 2.0), truth)
    acc.add(np.full((3, 3), -4.0), truth)
    np.testing.assert_allclose(acc.map(), 3.0)
    assert acc.count == 2
    with pytest.raises(InvalidInput, match="one size"):
        acc.add(np.zeros((2, 2)), np.zeros((2, 2)))


def test_css_of_identical_frames_is_one_and_constant_frames_score_one_too():
    frame = _scene() / 2
    assert css(frame, frame) == pytest.approx(1.0)
    flat = np.full((32, 32), 0.4)
    assert css(flat, flat) == pytest.approx(1.0)  # why CSS must never be reported alone


def test_css_matches_equation_10_by_hand():
    rng = np.random.default_rng(2)
    a = rng.random((16, 16))
    b = 0.5 * a + 0.3 * rng.random((16, 16))
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(), b.var()
    cov = ((a - ma) * (b - mb)).mean()
    c1, c2 = 1e-4, 9e-4
    expected = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    assert css(a, b) == pytest.approx(expected)
    assert css(a, b) == pytest.approx(css(b, a))


def test_css_of_independent_noisy_frames_is_below_one():
    rng = np.random.default_rng(3)
    clean = 5 * _scene()
    a, b = rng.poisson(clean), rng.poisson(clean)
    scale = SharedScaling.from_frames(np.stack([a, b]))
    value = css(scale(a), scale(b))
    assert 0.0 < value < 0.9


def test_shared_scaling_maps_the_series_to_unit_range():
    frames = np.array([[[2.0, 4.0]], [[6.0, 10.0]]])
    scale = SharedScaling.from_frames(frames)
    np.testing.assert_allclose(scale(frames[1]), [[0.5, 1.0]])
    with pytest.raises(InvalidInput, match="constant"):
        SharedScaling.from_frames(np.ones((2, 4, 4)))


@pytest.mark.parametrize("smoothing", [0.0, 1.0, 3.0])
def test_paired_frame_estimate_recovers_the_true_mse(smoothing):
    rng = np.random.default_rng(int(10 * smoothing) + 4)
    clean = 20 * _scene(512)
    a = rng.poisson(clean).astype(np.float64)
    b = rng.poisson(clean).astype(np.float64)
    restored = ndimage.gaussian_filter(a, smoothing) if smoothing else a
    true_mse = mse(restored, clean)
    estimate = paired_frame_mse(restored, b)
    # standard error of the per-pixel terms whose mean is the estimate
    stderr = np.std((restored - b) ** 2 - b) / np.sqrt(b.size)
    assert abs(estimate - true_mse) < 4 * stderr
    assert stderr < 0.3 * true_mse  # the check above is tight enough to mean something
    # the naive comparison with a noisy frame overstates the error by the noise variance
    assert mse(restored, b) > true_mse + 0.9 * clean.mean()
