"""Classical baselines checked against independent properties, and served through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import wiener as scipy_wiener

from emdenoise.baselines import (
    BASELINES,
    BY_KEY,
    REGISTRY,
    adaptive_wiener,
    anscombe,
    bilateral,
    gaussian_3x3,
    inverse_anscombe_unbiased,
    low_pass,
    median_3x3,
    nl_means,
    tv_bregman,
    tv_chambolle,
    vst_bm3d,
    vst_nlm,
    wavelet_bayesshrink,
)
from emdenoise.baselines.cards import all_cards, card_text
from emdenoise.errors import InvalidInput

REPO = Path(__file__).resolve().parent.parent
EDE_KEYS = [b.key for b in BASELINES if b.table == "ede"]


def _lattice(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth test scene with structure at several scales, in detector-like units."""
    y, x = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    scene = 1 + 0.5 * np.sin(2 * np.pi * 6 * x) * np.cos(2 * np.pi * 5 * y) + 0.3 * (x > 0.5)
    return 2540.0 + 238.0 * rng.poisson(20 * scene)


def _total_variation(image: np.ndarray) -> float:
    return float(np.abs(np.diff(image, axis=0)).sum() + np.abs(np.diff(image, axis=1)).sum())


def test_gaussian_is_the_binomial_kernel_with_reflect101_borders():
    image = _lattice()
    k = np.array([0.25, 0.5, 0.25])
    expected = ndimage.correlate1d(ndimage.correlate1d(image, k, axis=0, mode="mirror"), k, axis=1, mode="mirror")
    np.testing.assert_allclose(gaussian_3x3(image), expected, rtol=1e-6)
    # ...and not a sampled Gaussian of OpenCV's rule-of-thumb sigma 0.3*((3-1)*0.5-1)+0.8 = 0.8:
    sampled = ndimage.gaussian_filter(image, 0.8, mode="mirror", truncate=1.25)
    assert np.abs(gaussian_3x3(image) - sampled).max() > 1.0


def test_bilateral_with_paper_scales_is_a_disc_blur_on_unit_data():
    image = _lattice(48)
    out = bilateral(image)
    unit = (image - image.min()) / np.ptp(image)
    acc = np.zeros_like(unit)
    weights = 0.0
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            if dy * dy + dx * dx <= 16:  # OpenCV's circular 9-pixel neighbourhood
                w = np.exp(-(dy * dy + dx * dx) / (2 * 75.0**2))
                acc += w * np.roll(unit, (dy, dx), axis=(0, 1))
                weights += w
    expected = acc / weights * np.ptp(image) + image.min()
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(out[inner], expected[inner], rtol=0, atol=1e-3 * np.ptp(image))


def test_median_matches_scipy_median_filter_inside():
    image = _lattice()
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(median_3x3(image)[inner], ndimage.median_filter(image, 3)[inner], rtol=1e-6)


@pytest.mark.parametrize("key", EDE_KEYS)
def test_ede_filters_work_in_any_intensity_units(key):
    """The paper's filters run on [0, 1] data, so f(a x + b) = a f(x) + b for a > 0."""
    base = _lattice(48, seed=1)
    unit = (base - base.min()) / np.ptp(base)
    out_unit = BY_KEY[key](unit)
    out_raw = BY_KEY[key](unit * 900.0 + 3000.0)
    np.testing.assert_allclose(out_raw, out_unit * 900.0 + 3000.0, rtol=0, atol=2e-3 * 900.0)


def test_denoisers_reduce_gaussian_noise_on_a_flat_image():
    rng = np.random.default_rng(2)
    flat = 0.5 + 0.05 * rng.standard_normal((64, 64))
    flat[0, 0], flat[-1, -1] = 0.0, 1.0  # pin the [0, 1] mapping
    inner = (slice(8, -8), slice(8, -8))
    for fn in (wavelet_bayesshrink, tv_chambolle, nl_means, REGISTRY["wiener"]):
        assert fn(flat)[inner].std() < 0.5 * flat[inner].std(), fn.__name__


def test_chambolle_keeps_the_mean_and_lowers_total_variation():
    rng = np.random.default_rng(3)
    image = _lattice() + rng.normal(0, 300, (64, 64))
    out = tv_chambolle(image)
    assert out.mean() == pytest.approx(image.mean(), rel=1e-5)
    assert _total_variation(out) < 0.5 * _total_variation(image)
    assert _total_variation(tv_chambolle(image, weight=0.3)) < _total_variation(out)


def test_bregman_weight_is_a_fidelity_weight_smaller_is_smoother():
    image = _lattice()
    tv_strong = _total_variation(tv_bregman(image, weight=0.1))
    tv_weak = _total_variation(tv_bregman(image, weight=5.0))
    assert tv_strong < 0.5 * tv_weak < 0.5 * _total_variation(image)


def _sine(f: float, size: int = 128) -> np.ndarray:
    x = np.arange(size)
    return np.sin(2 * np.pi * f * x)[None, :] * np.ones((size, 1))


def test_low_pass_keeps_low_and_removes_high_frequencies():
    inner = (slice(32, -32), slice(32, -32))
    low, high = _sine(0.03), _sine(0.4)
    gain_low = np.abs(low_pass(low, cutoff=0.15)[inner]).max() / np.abs(low[inner]).max()
    gain_high = np.abs(low_pass(high, cutoff=0.15)[inner]).max() / np.abs(high[inner]).max()
    assert gain_low == pytest.approx(1.0, abs=0.01)
    assert gain_high < 0.03
    # half power at the cut-off: |H| = 1/sqrt(2)
    at_cutoff = np.abs(low_pass(_sine(0.125, 256), cutoff=0.125)[64:-64, 64:-64]).max()
    assert at_cutoff == pytest.approx(1 / np.sqrt(2), abs=0.02)


def test_adaptive_wiener_is_lims_filter_as_scipy_computes_it():
    rng = np.random.default_rng(4)
    image = rng.poisson(3 + 2 * _sine(0.05, 96)).astype(np.float64)
    ours = adaptive_wiener(image, size=13, noise=3.0)
    theirs = scipy_wiener(image, 13, noise=3.0)
    np.testing.assert_allclose(ours[6:-6, 6:-6], theirs[6:-6, 6:-6], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lam", [0.45, 2.0, 10.0, 100.0, 400.0])
def test_vst_round_trip_is_unbiased_on_constant_poisson_images(lam):
    rng = np.random.default_rng(int(lam * 100))
    counts = rng.poisson(lam, (512, 512))
    # the ideal denoiser of a constant image returns the mean of the transformed image
    restored = inverse_anscombe_unbiased(np.array([anscombe(counts).mean()]))[0]
    assert restored == pytest.approx(lam, rel=0.01)


def test_algebraic_inverse_is_biased_where_the_exact_one_is_not():
    counts = np.random.default_rng(9).poisson(2.0, (512, 512))
    d = anscombe(counts).mean()
    assert abs((d / 2) ** 2 - 0.375 - 2.0) / 2.0 > 0.05
    assert inverse_anscombe_unbiased(np.array([d]))[0] == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("fn", [vst_nlm, vst_bm3d])
def test_vst_denoisers_are_unbiased_and_honour_gain_offset(fn):
    rng = np.random.default_rng(5)
    counts = rng.poisson(5.0, (64, 64)).astype(np.float64)
    out = fn(counts)
    assert out.mean() == pytest.approx(5.0, rel=0.03)
    assert out.std() < 0.3 * counts.std()
    raw = 20.0 * counts + 100.0
    np.testing.assert_allclose(fn(raw, gain=20.0, offset=100.0), 20.0 * out + 100.0, rtol=1e-4, atol=0.05)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float64])
@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_baseline_returns_float32_of_the_input_shape(key, dtype):
    image = (np.random.default_rng(6).poisson(30, (40, 56)) + 5).astype(dtype)
    out = REGISTRY[key](image, **BY_KEY[key].params)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.isfinite(out).all()


@pytest.mark.parametrize("bad, match", [
    (np.ones((2, 8, 8)), "2D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    (np.ones((4, 4), dtype=np.complex64), "real"),
])
def test_bad_frames_get_one_clear_sentence(bad, match):
    with pytest.raises(InvalidInput, match=match):
        REGISTRY["gaussian_3x3"](bad)


def test_invalid_parameters_are_refused():
    with pytest.raises(InvalidInput, match="odd"):
        adaptive_wiener(np.ones((8, 8)), size=4)
    with pytest.raises(InvalidInput, match="cut-off"):
        low_pass(np.ones((8, 8)), cutoff=0.7)
    with pytest.raises(InvalidInput, match="gain"):
        vst_nlm(np.ones((8, 8)), gain=0.0)


def test_shipped_cards_equal_the_generated_ones():
    cards = all_cards()
    assert len({c["id"] for c in cards}) == len(cards) == 13
    for card in cards:
        path = REPO / "export" / card["id"] / "card.json"
        assert path.read_text(encoding="utf-8") == card_text(card), f"regenerate {path}"
        assert card["classical"]["function"] in REGISTRY
        loaded = json.loads(path.read_text(encoding="utf-8"))
        out = REGISTRY[loaded["classical"]["function"]](np.full((32, 32), 7.0) + np.eye(32),
                                                        **loaded["classical"]["params"])
        assert out.shape == (32, 32)


def test_classical_cards_run_through_the_engine_unchanged():
    engine_mod = pytest.importorskip("emdenoise.engine")
    engine = engine_mod.Engine(device="cpu")
    rng = np.random.default_rng(8)
    frame = (2540 + 238 * rng.poisson(6, (48, 72))).astype(np.int16)
    for key, model_id in (("gaussian_3x3", "classical-gaussian3"), ("low_pass", "classical-lpf")):
        direct = BY_KEY[key](frame)
        np.testing.assert_array_equal(engine.denoise(frame, model_id), direct)
    # counts-normalised card: the engine turns gain/offset into counts for the VST
    served = engine.denoise(frame, "classical-vst-nlm", gain=238.0, offset=2540.0)
    np.testing.assert_allclose(served, vst_nlm(frame, gain=238.0, offset=2540.0), rtol=1e-5, atol=1e-2)
