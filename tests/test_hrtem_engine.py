"""Issue 17's HRTEM training-data engine and yardstick: exit-wave bank, on-the-fly imaging,
the cross-domain test set's constants, the Kilaas filters, tuning, and bench hrtem-xdomain.

Everything runs on tiny grids (a 12.8 Å cell on 96 multislice points) so the file stays
well under a minute on one core.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from emdenoise.simulate import crossdomain, exitwaves
from emdenoise.simulate.exitwaves import BankConfig, compute_exit_wave, generate_bank, load_wave, sample_wave_params, wave_rng
from emdenoise.simulate.imaging import ExitWaveImager, ImagingConfig, form_image

TINY = BankConfig(extent_a=12.8, sim_gpts=96, store_gpts=64, thickness_a=(8.0, 16.0), carbon_thickness_a=(5.0, 10.0),
                  particle_diameter_a=(6.0, 9.0), max_atoms=2500)
TINY_IMAGING = ImagingConfig(pixel_size_a=(0.2, 0.4), lru_size=2)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bank")
    generate_bank(folder, n=3, seed=5, config=TINY, log=lambda line: None)
    return folder


def test_bank_files_hold_complex_waves_with_their_metadata(bank):
    files = exitwaves.bank_files(bank)
    assert [f.name for f in files] == [f"wave-s5-{i:06d}.npz" for i in range(3)]
    wave, meta = load_wave(files[0])
    assert wave.dtype == np.complex64 and wave.shape == (64, 64)
    assert meta["parametrization"] == "lobato" and meta["gpts"] == 64
    assert meta["sampling_A"] == pytest.approx(0.2)
    assert meta["energy_kV"] in (80.0, 200.0, 300.0)
    assert not set(meta["elements"]) & {"Pt", "Ce"}
    # Unit incident beam: the mean intensity of an exit wave stays near 1.
    assert 0.5 < float(np.mean(np.abs(wave) ** 2)) < 1.2
    assert json.loads((bank / "bank.json").read_text())["config"]["store_gpts"] == 64


def test_bank_resumes_and_each_wave_depends_only_on_seed_and_index(bank):
    again = generate_bank(bank, n=3, seed=5, config=TINY, log=lambda line: None)
    assert again["made"] == 0 and again["skipped"] == 3
    rng = wave_rng(5, 1)
    wave, _ = compute_exit_wave(sample_wave_params(rng, TINY), rng, TINY)
    stored, _ = load_wave(exitwaves.wave_path(bank, 5, 1))
    np.testing.assert_array_equal(wave, stored)
    with pytest.raises(ValueError, match="another configuration"):
        generate_bank(bank, n=1, seed=5, config=BankConfig(), log=lambda line: None)


def test_bank_never_draws_the_held_out_family():
    rng = np.random.default_rng(0)
    draws = [sample_wave_params(rng) for _ in range(2000)]
    assert not {d["material"] for d in draws} & {"Pt", "CeO2"}
    assert "Pt" not in {d.get("metal") for d in draws}
    supports = {d["material"] for d in draws if d["morphology"] == "supported"}
    assert supports and not supports & {"CeO2", "CaF2", "ZrO2"}  # no fluorite supports
    assert {d["morphology"] for d in draws} == set(exitwaves.MORPHOLOGIES)
    assert BankConfig().parametrization == "lobato"


def test_imaging_transfer_matches_abtem(bank):
    abtem = pytest.importorskip("abtem")
    from emdenoise.simulate.optics import configure_abtem

    configure_abtem("cpu")
    wave, meta = load_wave(exitwaves.bank_files(bank)[0])
    optics = dict(C10_A=-60.0, C12_A=15.0, phi12_rad=0.7, C30_A=-13e4, C50_A=5e7, focal_spread_A=40.0,
                  convergence_mrad=0.3, aperture_mrad=None, vibration_A=0.0, mtf_q0=None)
    mine = form_image(wave, meta["sampling_A"], meta["energy_eV"], optics, 64)
    ctf = abtem.CTF(energy=meta["energy_eV"], C10=-60.0, C12=15.0, phi12=0.7, C30=-13e4, C50=5e7,
                    focal_spread=40.0, angular_spread=0.3)
    ref = abtem.Waves(wave, energy=meta["energy_eV"], sampling=meta["sampling_A"]).apply_ctf(ctf).intensity().array
    pixel = np.sinc(np.fft.fftfreq(64))  # form_image always applies the pixel aperture
    ref = np.fft.ifft2(np.fft.fft2(ref) * pixel[:, None] * pixel[None, :]).real
    assert np.abs(mine - ref).max() < 1e-3 * max(1.0, float(ref.max()))


def test_imager_is_deterministic_and_returns_counts(bank):
    imager = ExitWaveImager(bank, TINY_IMAGING)
    a = imager.sample(np.random.default_rng(11), 32)
    b = ExitWaveImager(bank, TINY_IMAGING).sample(np.random.default_rng(11), 32)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    clean, noisy, params = a
    assert clean.shape == noisy.shape == (32, 32) and clean.dtype == noisy.dtype == np.float32
    assert np.all(noisy == np.round(noisy)) and noisy.min() >= 0
    assert 0.2 <= params["pixel_size_A"] <= 0.4 + 1e-9
    assert TINY_IMAGING.dose[0] * 0.5 < params["dose"] < TINY_IMAGING.dose[1] * 1.5
    for _ in range(6):  # the LRU stays bounded
        imager.sample(np.random.default_rng(_), 32)
    assert len(imager._cache) <= 2


def test_vacuum_maps_to_the_dose(tmp_path):
    meta = {"sampling_A": 0.2, "energy_eV": 300e3, "energy_kV": 300.0, "morphology": "vacuum", "material": None}
    exitwaves._atomic_savez(tmp_path / "wave-s0-000000.npz", wave=np.ones((64, 64), np.complex64),
                            meta=np.array(json.dumps(meta)))
    imager = ExitWaveImager(tmp_path, ImagingConfig(pixel_size_a=(0.2, 0.4), dose=(2.0, 2.0001), dose_jitter=0.0))
    clean, noisy, params = imager.sample(np.random.default_rng(3), 48)
    np.testing.assert_allclose(clean, params["dose"], rtol=1e-4)
    assert params["dose"] == pytest.approx(2.0, rel=1e-3)
    assert abs(float(noisy.mean()) - 2.0) < 5 * np.sqrt(2.0 / noisy.size)
    low = ExitWaveImager(tmp_path, ImagingConfig(pixel_size_a=(0.2, 0.4), dose=(0.1, 0.10001), dose_jitter=0.0))
    assert float(low.sample(np.random.default_rng(3), 48)[0].mean()) == pytest.approx(0.1, rel=1e-3)


def test_crossdomain_settings_are_committed_constants():
    assert crossdomain.CONFIG.parametrization == "kirkland"
    assert crossdomain.CONFIG.gpts // crossdomain.CONFIG.bin_factor == 512
    assert crossdomain.CONFIG.dose == pytest.approx(0.45)
    assert crossdomain.CONFIG.optics.cs_um == -13.0 and crossdomain.CONFIG.optics.energy_ev == 300e3
    assert crossdomain.SPLITS == {"test": {"n": 24, "seed": 1_700_017}, "val": {"n": 8, "seed": 1_700_018}}
    # Its family is Pt on CeO2: exactly the elements the bank holds out.
    assert set(exitwaves.HELD_OUT_ELEMENTS) == {"Pt", "Ce"}
    assert crossdomain.CONFIG.parametrization != BankConfig().parametrization


def test_kilaas_filters_beat_the_gaussian_on_a_lattice_and_tuning_picks_a_middle_sigma():
    from emdenoise.bench.hrtem_xdomain import tune_rows
    from emdenoise.metrics import psnr

    y, x = np.mgrid[:96, :96]
    pairs = []
    for seed in range(2):
        clean = 0.45 * (1 + 0.5 * np.cos(2 * np.pi * x / 7) * np.cos(2 * np.pi * y / 9))
        pairs.append((np.random.default_rng(seed).poisson(clean).astype(np.float32), clean))
    tuned = tune_rows(pairs, ["gaussian", "fourier_wiener", "absf"])
    sigma = tuned["gaussian"]["sigma"]
    assert 1.0 <= sigma <= 8.6
    scores = tuned["gaussian"]["validation_psnr"]
    assert scores[sigma] > scores[0.4] + 3  # far better than the lightest blur
    best_gauss = max(scores.values())
    assert max(tuned["fourier_wiener"]["validation_psnr"].values()) > best_gauss + 3
    assert max(tuned["absf"]["validation_psnr"].values()) > best_gauss + 3
    raw = float(np.mean([psnr(noisy, clean) for noisy, clean in pairs]))
    assert best_gauss > raw + 5


def test_bench_hrtem_xdomain_runs_on_a_tiny_set(tmp_path):
    from emdenoise.cli import main
    from emdenoise.simulate.hrtem import HrtemConfig

    tiny = HrtemConfig(extent_a=30.0, gpts=96, bin_factor=2, parametrization="kirkland", families=("PtNp3",),
                       thickness_nm=(3.0,))
    crossdomain.ensure_crossdomain(tmp_path / "set", config=tiny,
                                   splits={"test": {"n": 2, "seed": 1}, "val": {"n": 1, "seed": 2}}, log=lambda s: None)
    out = tmp_path / "out"
    code = main(["bench", "hrtem-xdomain", "--set-dir", str(tmp_path / "set"), "--baselines", "unfiltered,gaussian",
                 "--no-peers", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "hrtem-xdomain.json").read_text())
    rows = {r["key"]: r for r in result["methods"]}
    assert set(rows) == {"unfiltered", "gaussian"} and result["n"] == 2 and result["validation"] == 1
    assert rows["gaussian"]["psnr_mean"] > rows["unfiltered"]["psnr_mean"]
    assert rows["gaussian"]["psnr1_mean"] > rows["unfiltered"]["psnr1_mean"]
    assert "sigma" in result["tuned"]["gaussian"]
