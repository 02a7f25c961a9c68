"""Sim-trained STEM denoiser (issue 17): simulator, VST U-Net, accumulating training, export, real-pair bench."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")

from emdenoise.simulate.stem_imager import StemImager  # noqa: E402
from emdenoise.simulate.stem_scan import line_filter, noise_correlation, scan  # noqa: E402
from emdenoise.simulate.stem_scenes import FAMILIES, stem_scene  # noqa: E402


def _flat_scan(first_tap: float, decay: float, dose: float = 6.0):
    params = dict(dose=dose, probe_sigma_px=0.5, filter_first_tap=first_tap, filter_decay=decay, jitter_px=0.0,
                  jitter_correlation=0.0, flicker=0.0, read_noise=0.0)
    return scan(np.ones((384, 384), np.float32), params, np.random.default_rng(3))


def test_scan_gives_noise_equivalent_counts_with_the_filter_correlation():
    clean, noisy = _flat_scan(0.6, 0.37)
    residual = noisy - clean
    assert abs(noisy.mean() - 6.0) < 0.05
    assert abs(residual.var() / clean.mean() - 1.0) < 0.03  # variance = mean: what estimate_counts yields
    taps = line_filter(0.6, 0.37)
    for lag in (1, 2):
        measured = np.mean(residual[:, lag:] * residual[:, :-lag]) / residual.var()
        assert abs(measured - noise_correlation(taps, lag)) < 0.02
    across = np.mean(residual[1:] * residual[:-1]) / residual.var()
    assert abs(across) < 0.02  # no correlation between scan lines


def test_uncorrelated_detector_has_white_noise():
    clean, noisy = _flat_scan(0.0, 0.3)
    residual = noisy - clean
    assert abs(np.mean(residual[:, 1:] * residual[:, :-1]) / residual.var()) < 0.02


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_scene_family_is_a_nonnegative_mean_one_density(family):
    scene, params = stem_scene(np.random.default_rng(1), (96, 128), family)
    assert scene.shape == (96, 128) and scene.dtype == np.float32
    assert scene.min() >= 0 and abs(scene.mean() - 1.0) < 1e-3
    assert params["family"] == family
    assert scene.std() > 0.05  # a structure, not a flat field


def test_imager_is_deterministic_and_clean_is_the_expectation():
    imager = StemImager()
    a = imager.sample(np.random.default_rng([5, 1]), 64)
    b = imager.sample(np.random.default_rng([5, 1]), 64)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (64, 64) and a[2]["dose"] > 0
    # many draws of one clean image average to it
    scene, _ = stem_scene(np.random.default_rng(2), (72, 80), "blobs")
    params = dict(dose=3.0, probe_sigma_px=1.0, filter_first_tap=0.5, filter_decay=0.3, jitter_px=0.0,
                  jitter_correlation=0.0, flicker=0.0, read_noise=0.0)
    rng = np.random.default_rng(4)
    draws = [scan(scene, params, rng) for _ in range(200)]
    mean = np.mean([d[1] for d in draws], axis=0)
    assert np.abs(mean - draws[0][0]).mean() < 0.05 * draws[0][0].mean()


def test_vst_unet_starts_as_the_identity_on_counts():
    from emdenoise.models.vst_unet import VstUNet

    x = torch.from_numpy(np.random.default_rng(0).poisson(3.0, (1, 1, 32, 40)).astype(np.float32))
    assert torch.allclose(VstUNet(width=4)(x), x, atol=1e-4)


def _train(out, steps=5, **changes):
    from emdenoise.train.sim_denoiser import SimTrainConfig, train

    config = SimTrainConfig(width=4, crop=32, batch=2, validate_every=3, validation_images=2, validation_size=32,
                            **changes)
    return train(out, config, hours=1.0, max_steps=steps, log=lambda line: None)


def test_training_resumes_and_continues_from_a_committed_carry(tmp_path):
    from emdenoise.train.sim_denoiser import read_carry

    run = tmp_path / "run"
    first = _train(run)
    assert first["steps"] >= 3 and (run / "state.pt").is_file() and (run / "carry.npz").is_file()
    lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert lines and all(line["val_error"] > 0 for line in lines)
    second = _train(run)
    assert second["steps"] > first["steps"]
    assert second["cpu_seconds"] > first["cpu_seconds"]
    meta, weights = read_carry(run / "carry.npz")
    assert meta["steps"] == second["steps"] and meta["config"]["width"] == 4
    moved = _train_from_carry(tmp_path / "elsewhere", run / "carry.npz")
    assert moved["steps"] > second["steps"]  # counters carried over to a new machine's folder


def _train_from_carry(out, carry):
    from emdenoise.train.sim_denoiser import SimTrainConfig, train

    return train(out, SimTrainConfig(), hours=1.0, max_steps=2, init=carry, log=lambda line: None)


def test_export_serves_what_pytorch_computes_and_refuses_an_existing_id(tmp_path):
    from emdenoise.engine import Engine
    from emdenoise.errors import UserError
    from emdenoise.train.sim_export import export_run
    from emdenoise.bench.stem_real import checkpoint_restorer

    run = tmp_path / "run"
    _train(run)
    folder = export_run(run / "carry.npz", "sim-test-stem", tmp_path / "models")
    card = json.loads((folder / "card.json").read_text())
    assert card["modality"] == "stem" and card["normalization"]["kind"] == "counts"
    assert card["receptive_field"] > 1 and not card["global"]
    assert card["training"]["steps"] > 0 and card["training"]["history_step_cpuh_valerror"]
    engine = Engine([tmp_path / "models"], device="cpu")
    counts = np.random.default_rng(1).poisson(4.0, (200, 184)).astype(np.float32)
    served = engine.denoise_frame(counts * 10 + 100, engine.repository.get("sim-test-stem"), gain=10.0, offset=100.0)
    restore, _ = checkpoint_restorer(run / "carry.npz")
    # The engine pads frame borders by reflection, PyTorch by zeros: compare beyond the field of view's reach.
    reach = card["receptive_field"] // 2 + 1
    inner = (slice(reach, -reach), slice(reach, -reach))
    np.testing.assert_allclose(((served - 100) / 10)[inner], restore(counts)[inner], atol=2e-3)
    with pytest.raises(UserError, match="new id"):
        export_run(run / "carry.npz", "sim-test-stem", tmp_path / "models")


def test_bench_stem_real_scores_a_pair_against_both_gaussians(tmp_path):
    from emdenoise.bench import stem_real

    clean, _, _ = StemImager(families=["film"]).sample(np.random.default_rng(7), 128)
    rng = np.random.default_rng(8)
    frames = np.stack([rng.poisson(np.clip(clean, 0, None)) for _ in range(2)]) * 50 + 1000
    pair = tmp_path / "pair.tif"
    tifffile.imwrite(pair, frames.astype(np.uint16))
    parser = argparse.ArgumentParser()
    stem_real.register(parser.add_subparsers())
    args = parser.parse_args(["stem-real", "--pair", str(pair), "--models", "classical-gaussian3", "--out",
                              str(tmp_path / "out")])
    assert args.func(args) == 0
    result = json.loads((tmp_path / "out" / "stem-real.json").read_text())
    rows = {row.get("key", row["method"]): row for row in result["rows"]}
    assert rows["gaussian_oracle"]["error"] <= rows["gaussian_sim"]["error"] + 1e-9
    assert rows["Unfiltered"]["ratio_to_oracle"] > 1.0
    assert abs(result["gain"] - 50) < 5  # the project's own estimate found the scaling
    assert "classical-gaussian3" in rows
