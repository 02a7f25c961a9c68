"""``emdenoise adapt`` (issue 18): no-truth errors, classical-auto, method choice, jobs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from emdenoise.adapt import classical, scores
from emdenoise.adapt.data import prepare
from emdenoise.cli import main
from emdenoise.errors import InvalidInput


def specimen(size: int = 160, seed: int = 0, dose: float = 6.0) -> np.ndarray:
    """A smooth random texture in counts (mean ``dose``), like particles on a support."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(size, size)), 3.0)
    return (dose * (1 + 0.6 * field / field.std())).clip(0.2).astype(np.float32)


def scan_noise(clean: np.ndarray, rng: np.random.Generator, *, correlated: bool) -> np.ndarray:
    """Poisson counts; with ``correlated`` the noise is smeared along x as a STEM scan line smears it."""
    noisy = rng.poisson(clean).astype(np.float32)
    if not correlated:
        return noisy
    noise = noisy - clean
    smeared = (noise + np.roll(noise, 1, axis=1)) / np.sqrt(2)  # lag-1 correlation 0.5, variance kept
    return clean + smeared


def true_error(restored: np.ndarray, clean: np.ndarray) -> float:
    return float(np.mean((restored.astype(np.float64) - clean) ** 2))


# -- the no-truth errors --------------------------------------------------------------------
def test_paired_and_thinned_errors_estimate_the_true_error_without_the_clean_image():
    clean = specimen(256)
    rng = np.random.default_rng(1)
    a, b = rng.poisson(clean).astype(np.float32), rng.poisson(clean).astype(np.float32)
    for sigma in (0.7, 1.5, 4.0):
        restore = classical.restorer("gaussian", sigma)
        truth = 0.5 * (true_error(restore(a), clean) + true_error(restore(b), clean))
        assert scores.paired_error(restore, a, b) == pytest.approx(truth, rel=0.08, abs=0.02)
    # thinning: the input half has half the dose, so compare with the true error at that dose
    for sigma in (0.7, 1.5):
        restore = classical.restorer("gaussian", sigma)
        half, _ = scores.thinning_halves(a, 0.5, np.random.default_rng(0))
        assert scores.thinned_error(restore, a) == pytest.approx(true_error(restore(half), clean), rel=0.1, abs=0.03)


def test_blind_spot_error_of_a_donut_filter_is_unbiased_and_the_mask_follows_the_scan_line_noise():
    clean = specimen(256, seed=2)
    rng = np.random.default_rng(3)
    white = scan_noise(clean, rng, correlated=False)
    streaked = scan_noise(clean, rng, correlated=True)
    assert scores.mask_half_width(white) == 0
    assert scores.mask_half_width(streaked) == 1
    assert scores.scan_line_correlation(streaked)[0] == pytest.approx(0.5, abs=0.05)
    for sigma in (1.0, 2.0):
        donut = scores.donut_gaussian(white, sigma, 0)
        assert scores.blind_spot_error(lambda f: scores.donut_gaussian(f, sigma, 0), white) == pytest.approx(
            true_error(donut, clean), rel=0.1, abs=0.03)
    # an unmasked neighbour with correlated noise makes the same estimate far too optimistic
    naive = scores.blind_spot_error(lambda f: scores.donut_gaussian(f, 0.6, 0), streaked)
    honest = scores.blind_spot_error(lambda f: scores.donut_gaussian(f, 0.6, 1), streaked)
    assert naive < true_error(scores.donut_gaussian(streaked, 0.6, 0), clean) - 0.5
    assert honest == pytest.approx(true_error(scores.donut_gaussian(streaked, 0.6, 1), clean), rel=0.15)


def test_sure_estimates_the_error_of_filters_that_see_every_pixel_under_correlated_noise():
    clean = specimen(256, seed=4)
    streaked = scan_noise(clean, np.random.default_rng(5), correlated=True)
    truths, estimates = [], []
    for sigma in (0.6, 1.2, 2.0, 4.0):
        restore = classical.restorer("gaussian", sigma)
        truths.append(true_error(restore(streaked), clean))
        estimates.append(scores.sure_error(restore, streaked))
        assert estimates[-1] == pytest.approx(truths[-1], rel=0.12, abs=0.05)
    assert int(np.argmin(estimates)) == int(np.argmin(truths))
    # ignoring the scan-line correlation (white-noise SURE) misjudges a light blur
    white = scores.sure_error(classical.restorer("gaussian", 0.6), streaked, correlations=[0.0])
    assert abs(white - truths[0]) > 3 * abs(estimates[0] - truths[0])
    kernel = scores.correlated_noise_kernel([0.5, 0.2])
    assert [float(np.sum(kernel[: len(kernel) - k] * kernel[k:])) for k in range(3)] == pytest.approx([1, 0.5, 0.2], abs=1e-3)


def test_noise_correlation_along_x_reads_long_lags_through_a_strong_specimen():
    # noise smeared along x by a 5-tap filter: correlation at lags 1-4 known exactly
    taps = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
    expected = [float(np.sum(taps[: len(taps) - k] * taps[k:]) / np.sum(taps**2)) if k < len(taps) else 0.0 for k in range(1, 7)]
    clean = specimen(256, seed=6, dose=20.0)
    clean = clean * (1 + 0.5 * np.sin(np.arange(256) / 3.0))[:, None]  # structure along y, as rows of atoms give
    rng = np.random.default_rng(7)
    white = rng.poisson(clean) - clean
    smeared = sum(t * np.roll(white, k, axis=1) for k, t in enumerate(taps)) / np.sqrt(np.sum(taps**2))
    measured = scores.noise_correlation_along_x(clean + smeared, lags=6)
    assert measured == pytest.approx(expected, abs=0.03)
    # row differences carry the specimen's y-structure into every lag
    assert abs(scores.scan_line_correlation(clean + smeared)[3] - expected[3]) > 0.05


def test_classical_auto_picks_the_sigma_the_truth_would_pick():
    clean = specimen(256, seed=4)
    rng = np.random.default_rng(5)
    a, b = scan_noise(clean, rng, correlated=True), scan_noise(clean, rng, correlated=True)
    truth = {s: true_error(classical.restorer("gaussian", s)(a), clean) for s in (0.7, 1.0, 1.4, 2.0, 2.9, 4.2)}
    best = min(truth.values())
    paired = classical.choose(lambda f: scores.paired_error(f, a, b), with_nlm=False)
    blind = classical.choose_blind(a[None], scores.mask_half_width(a))
    for choice in (paired, blind):
        assert true_error(choice.restore(a), clean) <= 1.05 * best, choice
    served = classical.gaussian_auto(100.0 + 20.0 * a)  # any linear units: no calibration needed
    assert true_error((served - 100.0) / 20.0, clean) <= 1.05 * best


# -- what the data allow --------------------------------------------------------------------
def test_prepare_registers_drifting_frames_and_chooses_the_method():
    clean = specimen(224, seed=6)
    rng = np.random.default_rng(7)
    a = rng.poisson(clean[8:200, 4:196]).astype(np.float32)
    b = rng.poisson(clean[13:205, 1:193]).astype(np.float32)  # drifted by (5, -3) px
    data = prepare([20 * a + 100, 20 * b + 100], gain=20.0, offset=100.0, method="pair")
    assert data.method == "pair" and data.shifts == [(-5, 3)]
    assert prepare([20 * a + 100, 20 * b + 100], gain=20.0, offset=100.0).method == "thinning"  # whole counts
    assert prepare([a + 0.37, b + 0.37], gain=1.0, offset=0.0).method == "pair"
    aligned = np.concatenate([data.train, data.held_out], axis=1)
    assert np.corrcoef(gaussian_filter(aligned[0], 2).ravel(), gaussian_filter(aligned[1], 2).ravel())[0, 1] > 0.9
    assert prepare([a], gain=1.0, offset=0.0).method == "thinning"  # whole counts: a counting detector
    assert prepare([a + 0.37 * rng.random(a.shape)], gain=1.0, offset=0.0).method == "blindspot"
    assert data.held_out.shape[1] >= 32 and data.train.shape[1] + data.held_out.shape[1] <= 192


@pytest.mark.parametrize("frames, kwargs, message", [
    (lambda: [np.random.default_rng(0).poisson(specimen(160, 1)), np.random.default_rng(1).poisson(specimen(160, 9))],
     {"gain": 1.0, "offset": 0.0, "method": "pair"}, "do not show the same field"),
    (lambda: [np.ones((40, 40))], {"gain": 1.0, "offset": 0.0}, "too small"),
    (lambda: [np.ones((96, 96)), np.ones((96, 80))], {}, "different sizes"),
    (lambda: [np.full((96, 96), np.nan)], {}, "NaN"),
    (lambda: [specimen(96) + 0.3], {"method": "thinning", "gain": 1.0, "offset": 0.0}, "whole counts"),
    (lambda: [specimen(96)], {"method": "pair", "gain": 1.0, "offset": 0.0}, "two or more frames"),
])
def test_prepare_refuses_bad_data_with_one_sentence(frames, kwargs, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        prepare(frames(), **kwargs)
    text = str(caught.value)
    assert "\n" not in text and text.endswith(".")


# -- jobs end to end ------------------------------------------------------------------------
torch_needed = pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None, reason="needs [train]")


@torch_needed
def test_adapt_cli_trains_on_a_pair_registers_the_model_and_it_denoises(env, tmp_path, capsys):
    clean = specimen(128, seed=8)
    rng = np.random.default_rng(9)
    pair = np.stack([scan_noise(clean, rng, correlated=True) for _ in range(2)])
    path = tmp_path / "pair.tif"
    tifffile.imwrite(path, (50 * pair + 1000).astype(np.uint16))
    code = main(["adapt", str(path), "--name", "adapt-test-pair", "--minutes", "0.15", "--modality", "stem",
                 "--set", "eval_seconds=2", "--set", "width=8", "--set", "classical_nlm=false"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "classical-auto: Gaussian sigma" in printed and "held-out error" in printed
    assert "model adapt-test-pair is ready" in printed and "classical-auto (Gaussian" in printed
    folder = Path(env["EMDENOISE_MODELS"]) / "adapt-test-pair"
    card = json.loads((folder / "card.json").read_text())
    assert card["training"]["method"] == "pair" and card["modality"] == "stem" and card["global"] is False
    assert card["receptive_field"] > 20 and card["tile"]["overlap"] == card["receptive_field"] // 2
    assert card["training_data"]["gain"] == pytest.approx(50, rel=0.1) and card["training_data"]["frames"] == 2
    scored = card["metrics"]["held_out_no_truth"]
    assert np.isfinite(scored["adapted"]) and np.isfinite(scored["classical_auto"]["error"])
    assert scored["beats_classical_auto"] == (scored["adapted"] < scored["classical_auto"]["error"])
    assert card["training"]["cpu_hours"] > 0 and card["training"]["steps_run"] > 0
    out = tmp_path / "out"
    assert main(["denoise", str(path), "-o", str(out), "--model", "adapt-test-pair"]) == 0
    restored = tifffile.imread(out / "pair_denoised-adapt-test-pair.tif")
    assert restored.shape == pair.shape and np.isfinite(restored).all()
    # the same name again is refused before any training, and --from continues a model adapt made
    assert main(["adapt", str(path), "--name", "adapt-test-pair", "--minutes", "0.1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["adapt", str(path), "--name", "adapt-test-more", "--from", "adapt-test-pair", "--minutes", "0.05",
                 "--set", "eval_seconds=2", "--set", "classical_nlm=false"]) == 0
    more = json.loads((Path(env["EMDENOISE_MODELS"]) / "adapt-test-more" / "card.json").read_text())
    assert more["training"]["started_from"] == "adapt-test-pair" and more["architecture"]["spec"]["width"] == 8
    assert main(["adapt", str(path), "--name", "adapt-test-bad", "--from", "ede-kernel-stem-5", "--minutes", "0.05"]) == 2
    assert "only models made by emdenoise adapt" in capsys.readouterr().err


@torch_needed
def test_adapt_on_a_lone_frame_uses_the_blind_spot_and_reports_classical_auto(env, tmp_path, capsys):
    sample = Path(__file__).resolve().parent.parent / "python" / "emdenoise" / "data" / "sample_srtio3_haadf.tif"
    code = main(["adapt", str(sample), "--name", "adapt-test-lone", "--minutes", "0.1",
                 "--set", "eval_seconds=3", "--set", "width=8"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    card = json.loads((Path(env["EMDENOISE_MODELS"]) / "adapt-test-lone" / "card.json").read_text())
    assert card["training"]["method"] == "blindspot"
    assert card["training_data"]["scan_line_mask_half_width"] >= 1  # the sample's noise is streaked along x
    assert "blind-spot" in card["metrics"]["held_out_no_truth"]["criterion"]
    assert ("NOT better" in printed) != card["metrics"]["held_out_no_truth"]["beats_classical_auto"]
    # the blind-spot network is scored in its masked (J-invariant) form
    assert "blind-spot" in card["metrics"]["held_out_no_truth"]["criterion"]
    assert card["metrics"]["held_out_no_truth"]["classical_auto"]["method"].startswith("Gaussian")


@torch_needed
def test_adapt_from_the_sim_trained_stem_model_starts_exactly_at_it(env, tmp_path, capsys):
    """``--from sim-vstunet32-stem-r2`` reads the prior's weights from its ONNX graph: with a
    zero learning rate the adapted model denoises exactly as the shipped one. On a single frame
    that is not whole counts, auto picks ``sure`` for such a prior (it scores the network as served)."""
    sample = Path(__file__).resolve().parent.parent / "python" / "emdenoise" / "data" / "sample_srtio3_haadf.tif"
    prior = "sim-vstunet32-stem-r2"
    code = main(["adapt", str(sample), "--name", "adapt-test-prior", "--from", prior, "--steps", "2",
                 "--set", "lr=0", "--set", "min_lr=0", "--set", "eval_seconds=1000", "--set", "crop=64", "--set", "batch=2"])
    assert code == 0, capsys.readouterr().err
    card = json.loads((Path(env["EMDENOISE_MODELS"]) / "adapt-test-prior" / "card.json").read_text())
    assert card["architecture"]["spec"] == {"family": "vst-unet", "width": 32, "depth": 3}
    assert card["training"]["started_from"] == prior and card["training"]["method"] == "sure"  # auto, for a prior served unmasked
    outputs = {}
    for model in (prior, "adapt-test-prior"):
        assert main(["denoise", str(sample), "-o", str(tmp_path / model), "--model", model,
                     "--gain", "29.4", "--offset", "0"]) == 0
        outputs[model] = tifffile.imread(tmp_path / model / f"sample_srtio3_haadf_denoised-{model}.tif")
    np.testing.assert_allclose(outputs["adapt-test-prior"], outputs[prior], rtol=0, atol=1e-3 * np.ptp(outputs[prior]))
    assert np.abs(outputs[prior] - tifffile.imread(sample)).mean() > 0  # it did denoise


@torch_needed
def test_adapt_job_on_a_real_server_that_never_imports_torch(env, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_train_series import Server  # the server process whose torch import fails loudly

    from emdenoise.client import RemoteClient

    clean = specimen(128, seed=10)
    rng = np.random.default_rng(11)
    frames = [rng.poisson(clean).astype(np.float32) for _ in range(3)]
    server = Server(env, mode="guard")
    try:
        with RemoteClient(server.address) as client:
            settings = {"max_seconds": 6, "eval_seconds": 2, "width": 8, "classical_nlm": False, "method": "auto"}
            job = client.training.start(frames, "adapt-test-remote", gain=1.0, offset=0.0, settings=settings,
                                        series_name="three frames", recipe="adapt", frame_count=3)
            events = list(client.training.watch(job["job_id"]))
            assert events[-1]["state"] == "done", events[-1]
            scored = [e for e in events if e["held_out_mse"] is not None]
            assert scored and all(np.isfinite(e["held_out_mse"]) and e["classical_mse"] > 0 for e in scored)
            assert "classical-auto" in events[-1]["message"]
            card = {c["id"]: c for c in client.list_models()}["adapt-test-remote"]
            assert card["training"]["method"] == "thinning" and card["training_data"]["frames"] == 3
            restored = list(client.denoise(frames[:1], "adapt-test-remote", gain=1.0, offset=0.0))
            assert restored[0].shape == clean.shape and np.isfinite(restored[0]).all()
            with pytest.raises(InvalidInput, match="unknown adapt setting"):
                client.training.start(frames, "adapt-test-bad", gain=1.0, offset=0.0, recipe="adapt",
                                      settings={"widht": 8})
            with pytest.raises(InvalidInput, match="unknown training recipe"):
                client.training.start(frames, "adapt-test-bad", gain=1.0, offset=0.0, recipe="magic")
    finally:
        server.stop()


def test_bench_adapt_scores_classical_rows_on_the_halves_it_never_tuned_on(tmp_path, capsys):
    clean = specimen(192, seed=14)
    rng = np.random.default_rng(15)
    pair = np.stack([scan_noise(clean, rng, correlated=True) for _ in range(2)])
    path = tmp_path / "pair.tif"
    tifffile.imwrite(path, (40 * pair + 500).astype(np.uint16))
    assert main(["bench", "adapt", "--pair", str(path), "--runs", "none", "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "adapt.json").read_text())
    rows = {row["method"].split(" (")[0]: row for row in result["pair"]["rows"]}
    oracle = next(row for row in result["pair"]["rows"] if "oracle" in row["method"])
    assert oracle["ratio_to_oracle"] == 1.0 and result["pair"]["gain"] == pytest.approx(40, rel=0.1)
    assert rows["Unfiltered"]["ratio_to_oracle"] > 2
    assert 1.0 <= rows["classical-auto"]["ratio_to_oracle"] <= 1.1  # chosen on the left halves only
    assert "| / oracle Gaussian |" in capsys.readouterr().out and (tmp_path / "out" / "adapt.md").is_file()
