"""Likelihood maps (seed 003, sec. 3): the Poisson math, region finding, Fig. 4, outputs, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from scipy import stats

from emdenoise.cli import main
from emdenoise.errors import InvalidInput
from emdenoise.likelihood import (
    VACUUM_LABEL,
    LikelihoodSettings,
    constant_rate_llr,
    likelihood_map,
    poisson_loglik,
)
from emdenoise.likelihood.export import region_rois, write_outputs, write_rois
from emdenoise.likelihood.overlay import CONTRADICTED_RGB, SUPPORTED_RGB, overlay_rgba
from emdenoise.likelihood.poisson import region_llrs
from emdenoise.likelihood.validation import fig4_trial, gaussian_lattice, summarise, support_probability

VACUUM = 0.45  # counts/px, seed 003


def one_column(shape=(96, 96), centre=(40.0, 57.0), sigma=3.0, peak=2.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return VACUUM + peak * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma**2))


# -- eq. 1 and the ratio -------------------------------------------------------------------
def test_poisson_loglik_is_the_sum_of_poisson_log_pmfs():
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.7, size=200)
    rates = rng.uniform(0.2, 3.0, size=200)
    assert poisson_loglik(counts, rates) == pytest.approx(stats.poisson.logpmf(counts, rates).sum(), rel=1e-12)


def test_llr_is_the_difference_of_the_two_hypotheses_log_likelihoods():
    rng = np.random.default_rng(2)
    counts = rng.poisson(0.8, size=57)
    a, b = 1.3, 0.45
    expected = poisson_loglik(counts, a) - poisson_loglik(counts, b)
    assert constant_rate_llr(counts.sum(), counts.size, a, b) == pytest.approx(expected, rel=1e-12)


def test_region_llrs_match_one_region_at_a_time():
    rng = np.random.default_rng(3)
    counts = rng.poisson(0.6, size=(40, 40)).astype(float)
    labels = rng.integers(-1, 5, size=(40, 40))
    rates = np.array([0.2, 0.5, 0.9, 1.4])
    got = region_llrs(counts, labels, rates, 0.6)
    for k in range(1, 5):
        inside = counts[labels == k]
        assert got[k - 1] == pytest.approx(constant_rate_llr(inside.sum(), inside.size, rates[k - 1], 0.6), rel=1e-12)


def test_zero_rate_hypothesis_stays_finite_and_strongly_negative():
    assert constant_rate_llr(5.0, 10, 0.0, 0.5) < -50
    assert math.isfinite(constant_rate_llr(5.0, 10, 0.0, 0.5))


# -- regions -------------------------------------------------------------------------------
def test_one_column_is_found_at_its_centre_and_tested_with_eq1():
    clean = one_column()
    noisy = np.random.default_rng(4).poisson(clean).astype(np.uint16)
    result = likelihood_map(noisy, clean)
    assert len(result.regions) == 1
    region = result.regions[0]
    assert abs(region.row - 40) <= 1 and abs(region.col - 57) <= 1
    assert region.radius == pytest.approx(3 * math.sqrt(2), abs=1.5)
    inside = result.labels == region.id
    assert region.pixels == inside.sum()
    assert region.intensity == pytest.approx(clean[inside].mean())
    assert region.observed == pytest.approx(noisy[inside].mean())
    vacuum = result.labels == VACUUM_LABEL
    assert result.vacuum_level == pytest.approx(noisy[vacuum].mean())
    expected = poisson_loglik(noisy[inside], region.intensity) - poisson_loglik(noisy[inside], result.vacuum_level)
    assert region.llr == pytest.approx(expected, rel=1e-9)
    # map: per-pixel LLR on the region, NaN elsewhere
    assert np.allclose(result.llr_map[inside], region.llr / region.pixels)
    assert np.isnan(result.llr_map[~inside]).all()
    assert result.llr_map.dtype == np.float32 and result.labels.dtype == np.int32


@pytest.mark.parametrize("peak, decisive", [(2.0, True), (0.12, False)])
def test_power_is_the_chance_of_support_and_faint_columns_are_called_undecided(peak, decisive):
    """A region's power is the exact probability that a real column of its size and
    intensity comes out supported; the message says when a column is too faint to decide."""
    clean = one_column(peak=peak)
    powers, supported = [], []
    for seed in range(200):
        result = likelihood_map(np.random.default_rng([6, seed]).poisson(clean).astype(np.uint16), clean,
                                settings=LikelihoodSettings(vacuum_level=VACUUM))
        (region,) = result.regions
        powers.append(region.power)
        supported.append(region.supported)
    power = float(np.mean(powers))
    assert (power >= 0.95) is decisive
    assert abs(np.mean(supported) - power) <= 3 * math.sqrt(max(power * (1 - power), 1e-3) / 200) + 0.01
    assert ("too faint to decide" in result.message) is not decisive


def test_total_map_units_put_the_whole_ratio_on_each_region():
    clean = one_column()
    noisy = np.random.default_rng(4).poisson(clean).astype(np.uint16)
    result = likelihood_map(noisy, clean, settings=LikelihoodSettings(map_units="total"))
    inside = result.labels == result.regions[0].id
    assert np.allclose(result.llr_map[inside], result.regions[0].llr)


def test_dark_columns_are_detected_with_auto_polarity():
    clean = 2 * VACUUM - gaussian_lattice(peak=0.35)  # columns darker than the vacuum
    noisy = np.random.default_rng(5).poisson(clean).astype(np.uint16)
    result = likelihood_map(noisy, clean)
    assert result.polarity == "dark"
    assert len(result.regions) == 35
    assert all(r.intensity < result.vacuum_level for r in result.regions)
    assert result.supported_fraction > 0.8


def test_counts_of_any_integer_dtype_give_the_same_map():
    clean = one_column()
    counts = np.random.default_rng(6).poisson(clean)
    maps = [likelihood_map(counts.astype(dtype), clean).llr_map for dtype in (np.uint8, np.uint16, np.int32, np.float32)]
    for other in maps[1:]:
        np.testing.assert_array_equal(maps[0], other)


# -- SBD Fig. 4 ------------------------------------------------------------------------------
@pytest.mark.parametrize("dose", [VACUUM, 2 * VACUUM])
def test_fig4_spurious_column_is_contradicted_and_true_columns_supported_at_the_poisson_rate(dose):
    """A column copied into the vacuum of the estimate gets LLR < 0 in every draw; true
    columns get LLR > 0 at the exact rate Poisson statistics allow for their size and
    contrast (a lattice of 35 Gaussian columns, peak 2x the vacuum level)."""
    clean = gaussian_lattice()
    trials = [fig4_trial(clean, np.random.default_rng([10, seed]), dose=dose) for seed in range(12)]
    summary = summarise(trials)
    assert summary["spurious_detected"] == 1.0
    assert summary["spurious_contradicted"] >= 0.95
    assert summary["true_regions"] == 12 * 35
    # 420 regions: the binomial standard error of the rate is ~0.012 at these rates
    assert abs(summary["true_supported"] - summary["true_supported_expected"]) < 0.04
    assert summary["true_supported"] >= (0.9 if dose == VACUUM else 0.95)


def test_support_probability_is_the_poisson_tail():
    # LLR > 0 <=> sum > n (a - b) / log(a / b); check against direct sampling
    rng = np.random.default_rng(7)
    n, a, b, true = 60, 0.7, 0.45, 0.62
    sums = rng.poisson(n * true, size=200_000)
    sampled = np.mean(sums * math.log(a / b) - n * (a - b) > 0)
    assert support_probability(true, n, a, b) == pytest.approx(sampled, abs=0.005)


# -- what is refused, what is empty ----------------------------------------------------------------
def test_non_count_data_without_gain_and_offset_is_refused():
    clean = one_column()
    readings = 100.0 + 17.3 * np.random.default_rng(8).poisson(clean)
    with pytest.raises(InvalidInput, match="not in counts.*--gain and --offset"):
        likelihood_map(readings.astype(np.float32), 100.0 + 17.3 * clean)


def test_whole_number_readings_with_a_gain_are_refused_without_gain_and_offset():
    clean = one_column()
    counts = np.random.default_rng(8).poisson(clean)
    readings = (100 + 20 * counts).astype(np.uint16)  # whole numbers, but not electrons
    with pytest.raises(InvalidInput, match="steps of 20.*--gain and --offset"):
        likelihood_map(readings, 100 + 20 * clean)
    likelihood_map(counts.astype(np.uint16), clean)  # the counts themselves pass


def test_gain_and_offset_turn_readings_into_the_same_map_as_counts():
    clean = one_column()
    counts = np.random.default_rng(8).poisson(clean)
    reference = likelihood_map(counts.astype(np.uint16), clean)
    readings = (100 + 20 * counts).astype(np.uint16)
    converted = likelihood_map(readings, 100 + 20 * clean, gain=20.0, offset=100.0)
    np.testing.assert_allclose(converted.llr_map, reference.llr_map, rtol=1e-5, equal_nan=True)


def test_frame_without_columns_is_an_empty_result_with_a_message():
    flat = np.full((80, 80), VACUUM)
    noisy = np.random.default_rng(9).poisson(flat).astype(np.uint16)
    result = likelihood_map(noisy, flat)
    assert result.regions == [] and np.isnan(result.llr_map).all()
    assert "no atom columns were detected" in result.message
    assert math.isnan(result.supported_fraction)


def test_frame_without_vacuum_is_refused_unless_the_level_is_given():
    crystal = gaussian_lattice((96, 96), rows=9, cols=7, spacing=12, sigma=2.5)[:, 8:88]
    noisy = np.random.default_rng(10).poisson(crystal).astype(np.uint16)
    with pytest.raises(InvalidInput, match="no vacuum region.*--vacuum-level"):
        likelihood_map(noisy, crystal)
    result = likelihood_map(noisy, crystal, settings=LikelihoodSettings(vacuum_level=VACUUM))
    assert result.vacuum_pixels == 0 and len(result.regions) > 20


def test_frames_of_different_shapes_are_refused():
    with pytest.raises(InvalidInput, match="give the denoised result of this very frame"):
        likelihood_map(np.zeros((64, 64), np.uint16), np.zeros((64, 60)))


@pytest.mark.parametrize("options", [{"polarity": "up"}, {"min_sigma": 5, "max_sigma": 2}, {"threshold": 0}, {"vacuum_level": -1}])
def test_bad_settings_are_refused_with_a_sentence(options):
    with pytest.raises(InvalidInput):
        LikelihoodSettings.from_options(**options)


# -- overlay, table, ROIs -----------------------------------------------------------------------
def planted_result():
    clean = gaussian_lattice()
    rng = np.random.default_rng(11)
    from emdenoise.likelihood.validation import plant_spurious_column

    estimate, planted = plant_spurious_column(clean, rng)
    noisy = rng.poisson(clean).astype(np.uint16)
    return likelihood_map(noisy, estimate), planted


def test_overlay_is_red_where_supported_blue_where_contradicted_clear_elsewhere():
    result, planted = planted_result()
    rgba = overlay_rgba(result.llr_map)
    positive, negative = result.llr_map > 0, result.llr_map <= 0
    assert positive.any() and negative.any()
    assert (rgba[positive, :3] == SUPPORTED_RGB).all()
    assert (rgba[negative, :3] == CONTRADICTED_RGB).all()
    assert (rgba[np.isnan(result.llr_map), 3] == 0).all()
    assert (rgba[~np.isnan(result.llr_map), 3] > 0).all()
    assert np.isnan(result.llr_map[planted.row, planted.col]) or result.llr_map[planted.row, planted.col] < 0


def test_rois_carry_name_colour_and_llr_and_read_back_with_roifile(tmp_path):
    import roifile

    result, _ = planted_result()
    path = write_rois(tmp_path / "rois.zip", result)
    rois = roifile.roiread(path)
    columns = [roi for roi in rois if roi.name.startswith("col-")]
    assert len(columns) == len(result.regions)
    assert any(roi.name.startswith("vacuum-") for roi in rois)
    for roi, region in zip(columns, result.regions):
        assert roi.roitype == roifile.ROI_TYPE.OVAL
        assert roi.properties["llr"] == pytest.approx(region.llr, rel=1e-5)
        colour = SUPPORTED_RGB if region.llr > 0 else CONTRADICTED_RGB
        assert roi.stroke_color[1:] == bytes(colour)
        assert roi.widthd == pytest.approx(2 * region.radius)
        assert roi.xd + roi.widthd / 2 == pytest.approx(region.col + 0.5)
    assert len(region_rois(result, vacuum=False)) == len(result.regions)


def test_outputs_are_written_with_provenance_and_refuse_to_overwrite(tmp_path):
    result, _ = planted_result()
    written = write_outputs(result, tmp_path, "frame", provenance={"estimate": "test"})
    assert set(written) == {"map", "overlay", "preview", "table", "rois"}
    with tifffile.TiffFile(written["map"]) as tif:
        np.testing.assert_array_equal(tif.asarray(), result.llr_map)
        assert "emdenoise.estimate = test" in tif.imagej_metadata["Info"]
    lines = written["table"].read_text().splitlines()
    assert lines[0].startswith("id,row,col,radius,pixels,intensity,observed,llr,llr_per_pixel,power,vacuum_rate,significance,"
                               "decision,supported")
    assert len(lines) == 1 + len(result.regions)
    from emdenoise.errors import UserError

    with pytest.raises(UserError, match="--overwrite"):
        write_outputs(result, tmp_path, "frame")


# -- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def lattice_files(tmp_path):
    clean = gaussian_lattice()
    noisy = np.random.default_rng(12).poisson(clean).astype(np.uint16)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy)
    tifffile.imwrite(tmp_path / "clean.tif", clean.astype(np.float32))
    return tmp_path


def test_cli_writes_the_map_overlay_table_and_rois(lattice_files, capsys):
    out = lattice_files / "out"
    code = main(["likelihood", str(lattice_files / "noisy.tif"), "--denoised", str(lattice_files / "clean.tif"), "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "35 bright column regions tested" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["noisy_llr-overlay.png", "noisy_llr-preview.png", "noisy_llr-regions.csv", "noisy_llr-rois.zip", "noisy_llr.tif"]
    expected = likelihood_map(tifffile.imread(lattice_files / "noisy.tif"), tifffile.imread(lattice_files / "clean.tif"))
    np.testing.assert_array_equal(tifffile.imread(out / "noisy_llr.tif"), expected.llr_map)


def test_cli_refuses_non_count_data_in_one_sentence(lattice_files, capsys):
    readings = lattice_files / "readings.tif"
    tifffile.imwrite(readings, tifffile.imread(lattice_files / "noisy.tif").astype(np.float32) * 3.7 + 0.5)
    code = main(["likelihood", str(readings), "--denoised", str(lattice_files / "clean.tif"), "-o", str(lattice_files / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("emdenoise: error: the noisy frame is not in counts") and "Traceback" not in err


def test_cli_denoises_with_a_model_when_no_estimate_is_given(lattice_files, capsys):
    code = main([
        "likelihood", str(lattice_files / "noisy.tif"), "--model", "classical-gaussian3", "--device", "cpu",
        "-o", str(lattice_files / "m"), "--vacuum-level", "0.45",
    ])
    assert code == 0
    assert "column regions tested" in capsys.readouterr().out
    with tifffile.TiffFile(lattice_files / "m" / "noisy_llr.tif") as tif:
        assert "emdenoise.estimate = classical-gaussian3" in tif.imagej_metadata["Info"]


# -- the Fiji job action -------------------------------------------------------------------------
def test_fiji_job_writes_what_the_macro_opens(lattice_files):
    from emdenoise.fiji.jobdir import JobDir
    from emdenoise.likelihood.fiji_job import run_likelihood_job

    job = JobDir(lattice_files / "job")
    job.path.mkdir()
    request = {
        "input": str(lattice_files / "noisy.tif"), "denoised": str(lattice_files / "clean.tif"),
        "output": str(job.path / "out"), "model": "default", "server": "embedded", "gain": "0", "offset": "0",
        "polarity": "auto", "vacuum": "flat", "vacuum_level": "0", "min_sigma": "1", "max_sigma": "8",
        "threshold": "0.05", "map_units": "per-pixel",
    }
    status = run_likelihood_job(job, request)
    assert status["regions"] == 35 and status["model"] == ""
    expected = likelihood_map(tifffile.imread(request["input"]), tifffile.imread(request["denoised"]))
    np.testing.assert_array_equal(tifffile.imread(status["map"]), expected.llr_map)
    from PIL import Image

    rgb = np.asarray(Image.open(status["overlay"]))
    assert rgb.shape == expected.llr_map.shape + (3,)
    assert (rgb[np.isnan(expected.llr_map)] == 0).all()  # black = transparent in ImageJ's Add Image
    assert (rgb[expected.llr_map > 0] == SUPPORTED_RGB).all()
    assert status["rois"].exists() and status["table"].exists()
