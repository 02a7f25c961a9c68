"""Gain/offset/dose from the mean-variance relation, on simulated counts and a real HAADF pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.errors import InvalidInput
from emdenoise.io.metadata import ImageMetadata
from emdenoise.noise.calibration import (
    CountsCalibration,
    check_dose_range,
    estimate_counts,
    resolve_counts,
)

HAADF_PAIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "serialem_haadf_tilt0_2frames.tif"


def scene(size: int = 384) -> np.ndarray:
    """Electrons per pixel: smooth structure from 2 to ~45 e/px plus a bright bar with sharp edges."""
    y, x = np.mgrid[:size, :size]
    dose = 2.0 + 40.0 * (0.5 + 0.5 * np.sin(x / 20.0) * np.cos(y / 30.0)) ** 2
    dose[150:190, 60:300] += 100.0
    return dose


def detector(dose, gain, offset, frames, seed=0, blur=None):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(dose, size=(frames,) + dose.shape).astype(np.float64)
    if blur is not None:  # a slow detector smears each electron along the scan line
        padded = np.pad(counts, [(0, 0), (0, 0), (1, 1)], mode="reflect")
        counts = blur[0] * padded[..., :-2] + blur[1] * padded[..., 1:-1] + blur[2] * padded[..., 2:]
    return gain * counts + offset


@pytest.mark.parametrize("gain, offset", [(238.0, 2540.0), (1.0, 0.0), (7.5, 100.0)])
@pytest.mark.parametrize("frames, method", [(1, "single"), (2, "pair"), (4, "series")])
def test_recovers_known_gain_offset_and_dose(gain, offset, frames, method):
    truth = scene()
    data = detector(truth, gain, offset, frames, seed=frames)
    result = estimate_counts(data if frames > 1 else data[0])
    assert result.method == method
    assert result.gain == pytest.approx(gain, rel=0.03)
    assert result.dose == pytest.approx(truth.mean(), rel=0.03)  # offset error shows up here
    assert abs(result.offset - offset) < 0.03 * gain * truth.mean()
    assert abs(result.gain - gain) < 4 * result.gain_stderr + 0.005 * gain  # honest error bars
    assert result.quality == "good" and result.linearity < 0.03
    # the bar's edges are structure, not noise: the single-frame estimator must drop them
    if frames == 1:
        assert result.blocks_used < 0.99
    np.testing.assert_allclose(result.to_counts(data[0]).mean(), truth.mean(), rtol=0.03)


def test_series_accepts_an_iterable_of_frames_and_reads_only_the_first():
    truth = scene(256)
    data = detector(truth, 20.0, 50.0, 3, seed=3)

    def frames():
        yield from data
        raise AssertionError("read past max_frames")

    result = estimate_counts(frames(), max_frames=3)
    assert result.method == "series" and result.gain == pytest.approx(20.0, rel=0.03)


def test_scan_line_correlation_is_measured_and_reported():
    kernel = np.array([0.25, 0.5, 0.25])
    data = detector(scene(), 238.0, 2540.0, 2, seed=5, blur=kernel)
    pair = estimate_counts(data)
    single = estimate_counts(data[0])
    noise_equivalent = 238.0 * np.sum(kernel ** 2)  # pixel variance per mean of the smeared counts
    for result in (pair, single):
        assert result.gain == pytest.approx(noise_equivalent, rel=0.03)
        assert result.noise_correlation_x == pytest.approx(2 * 0.25 * 0.5 / np.sum(kernel ** 2), abs=0.05)
        assert any("scan line" in note for note in result.notes)
    assert abs(pair.noise_correlation_y) < 0.05


def test_uncorrelated_noise_has_no_correlation_note():
    result = estimate_counts(detector(scene(256), 3.0, 10.0, 2, seed=9))
    assert abs(result.noise_correlation_x) < 0.05 and abs(result.noise_correlation_y) < 0.05
    assert not any("scan line" in note for note in result.notes)


def test_flat_image_needs_a_known_offset():
    flat = detector(np.full((256, 256), 10.0), 1.0, 0.0, 2, seed=11)
    free = estimate_counts(flat)
    assert free.quality == "poor"
    assert any("--offset" in note for note in free.notes)
    fixed = estimate_counts(flat, offset=0.0)
    assert fixed.offset == 0.0 and fixed.offset_stderr == 0.0
    assert fixed.gain == pytest.approx(1.0, rel=0.03) and fixed.quality == "good"


def test_flat_frame_falls_back_to_an_assumed_offset_and_says_so():
    flat = detector(np.full((48, 48), 30.0), 3.0, 0.0, 1, seed=17)[0]
    assert not estimate_counts(flat).offset_determined
    result = resolve_counts([flat], assume_offset=0.0)
    assert result.offset == 0.0 and result.gain == pytest.approx(3.0, rel=0.15)
    assert result.quality == "poor" and "assumed" in result.source
    assert "offset 0 was assumed" in result.notes[0] and "--gain/--offset" in result.notes[0]
    structured = detector(scene(256), 5.0, 300.0, 2, seed=13)
    assert resolve_counts(structured, assume_offset=0.0).offset == pytest.approx(
        estimate_counts(structured).offset)  # a fit that works is kept


def test_tiny_frames_use_smaller_blocks_and_refuse_below_16_px():
    tiny = detector(np.full((20, 24), 30.0), 2.0, 0.0, 1, seed=19)[0]
    assert resolve_counts([tiny], assume_offset=0.0).gain == pytest.approx(2.0, rel=0.25)
    with pytest.raises(InvalidInput, match="at least 16x16"):
        resolve_counts([tiny[:12]], assume_offset=0.0)


def test_known_gain_fits_only_the_offset():
    data = detector(scene(256), 5.0, 300.0, 2, seed=13)
    result = estimate_counts(data, gain=5.0)
    assert result.gain == 5.0 and result.gain_stderr == 0.0
    assert result.offset == pytest.approx(300.0, abs=0.03 * 5.0 * scene(256).mean())


@pytest.mark.parametrize("frames, words", [
    (np.full((2, 128, 128), 7.0), "no noise"),
    (np.zeros((12, 40)), "too small"),
    (np.where(np.eye(128, dtype=bool), np.nan, 1.0), "NaN"),
    (np.ones((128, 128), np.complex64), "real-valued"),
])
def test_unusable_data_is_refused_in_one_sentence(frames, words):
    with pytest.raises(InvalidInput) as caught:
        estimate_counts(frames)
    text = str(caught.value)
    assert words in text and text.endswith(".") and "\n" not in text


def test_real_haadf_pair_matches_the_documented_noise_level():
    """shared/data/README.md: frame variance ~ 238 x (mean - 2540), noise correlated along x."""
    if not HAADF_PAIR.is_file():
        pytest.skip(f"{HAADF_PAIR} is missing")
    frames = tifffile.imread(HAADF_PAIR)
    pair = estimate_counts(frames)
    singles = [estimate_counts(frame) for frame in frames]
    mean = float(frames.mean())
    # the documented line and ours must give the same noise variance where the data are
    for level in (mean - 500.0, mean, mean + 500.0):
        assert pair.gain * (level - pair.offset) == pytest.approx(238.0 * (level - 2540.0), rel=0.08)
    assert pair.noise_correlation_x > 0.3 and abs(pair.noise_correlation_y) < 0.05
    assert pair.linearity < 0.03 and pair.quality == "good"
    # each frame alone, across scan lines, agrees with the pair
    for single in singles:
        assert single.gain == pytest.approx(pair.gain, rel=0.03)
        assert single.dose == pytest.approx(pair.dose, rel=0.03)
    assert 4.0 < pair.dose < 10.0  # "roughly ... ~6 detected electrons/px"


def test_check_dose_range():
    assert check_dose_range(300.0, (200, 2500)) is None
    assert check_dose_range(50.0, (25, None)) is None
    low = check_dose_range(6.4, (25, None))
    assert "below" in low and "25" in low and low.endswith(".")
    high = check_dose_range(1e4, [200, 2500])
    assert "above" in high and "2500" in high
    assert "could not be determined" in check_dose_range(-3.0, (25, 300))
    assert check_dose_range(None, (25, 300)) is None
    assert check_dose_range(10.0, None) is None


def test_resolve_counts_prefers_user_then_file_then_estimate():
    truth = scene(256)
    data = detector(truth, 4.0, 100.0, 2, seed=17)

    user = resolve_counts(data, ImageMetadata(gain=9.0, offset=0.0), gain=4.0, offset=100.0)
    assert (user.gain, user.offset, user.source, user.method) == (4.0, 100.0, "user", "given")
    assert user.dose == pytest.approx(truth.mean(), rel=0.01)

    from_file = resolve_counts(data, ImageMetadata(gain=4.0, offset=100.0))
    assert from_file.source == "file" and from_file.dose == pytest.approx(truth.mean(), rel=0.01)

    mixed = resolve_counts(data, ImageMetadata(gain=4.0))
    assert mixed.source == "file+estimated" and mixed.gain == 4.0
    assert mixed.offset == pytest.approx(100.0, abs=0.03 * 4.0 * truth.mean())

    estimated = resolve_counts(data)
    assert estimated.source == "estimated" and estimated.gain == pytest.approx(4.0, rel=0.03)

    by_dose = resolve_counts(data, offset=100.0, dose=float(truth.mean()))
    assert by_dose.gain == pytest.approx(4.0, rel=0.01) and by_dose.source == "user"


@pytest.mark.parametrize("options", [{"gain": 0.0}, {"gain": -2.0}, {"dose": float("nan")},
                                     {"offset": float("inf")}])
def test_resolve_counts_rejects_bad_options(options):
    with pytest.raises(InvalidInput, match="must be"):
        resolve_counts(np.ones((64, 64)), **options)


def test_to_counts_is_float32():
    calibration = CountsCalibration(gain=2.0, offset=10.0, dose=1.0)
    counts = calibration.to_counts(np.array([[10, 12], [14, 16]], dtype=np.uint16))
    assert counts.dtype == np.float32
    np.testing.assert_array_equal(counts, [[0, 1], [2, 3]])
