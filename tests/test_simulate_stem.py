"""Noise2Atom clean-domain sampler (seed 004) and the HAADF series simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from emdenoise.simulate.stem import (
    Noise2AtomConfig,
    SeriesConfig,
    gaussian_kernel,
    noise2atom_clean,
    noise2atom_pair,
)


def test_noise2atom_sampler_matches_the_papers_statistics():
    """75-150 positions, 1-4 atoms each, variance in [1, 10], 128 x 128 centre crop."""
    rng = np.random.default_rng(11)
    n_pos, variances, atoms = [], [], []
    for _ in range(300):
        image, p = noise2atom_clean(rng)
        assert image.shape == (128, 128) and image.dtype == np.float32
        n_pos.append(p["n_positions"])
        variances.append(p["variance"])
        atoms.extend(p["atoms"])
        assert len(set(map(tuple, p["positions_rc"]))) == p["n_positions"]  # distinct sites
    n_pos, variances, atoms = np.array(n_pos), np.array(variances), np.array(atoms)
    assert n_pos.min() >= 75 and n_pos.max() <= 150
    assert n_pos.mean() == pytest.approx(112.5, abs=3.0)  # uniform on 75..150
    assert variances.min() >= 1.0 and variances.max() <= 10.0
    assert variances.mean() == pytest.approx(5.5, abs=0.4)
    assert set(np.unique(atoms)) == {1, 2, 3, 4}
    assert np.bincount(atoms)[1:] / atoms.size == pytest.approx([0.25] * 4, abs=0.02)


def test_noise2atom_image_is_the_convolved_lattice():
    image, p = noise2atom_clean(np.random.default_rng(4))
    var = p["variance"]
    rc = np.array(p["positions_rc"])
    counts = np.array(p["atoms"])
    # Rebuild from the recorded positions with a direct (not FFT) convolution.
    o = p["crop_offset"]
    lattice = np.zeros((256, 256))
    lattice[rc[:, 0] + o, rc[:, 1] + o] = counts
    kernel = gaussian_kernel(33, var)
    rebuilt = ndimage.convolve(lattice, kernel, mode="constant")[o : o + 128, o : o + 128]
    assert np.allclose(image, rebuilt, atol=1e-4)
    # An isolated site peaks at its atom count.
    inside = (rc >= 20).all(1) & (rc < 108).all(1)
    d = np.hypot(*(rc[:, None, :] - rc[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    lonely = np.flatnonzero(inside & (d.min(1) > 6 * np.sqrt(var)))
    for k in lonely:
        assert image[rc[k, 0], rc[k, 1]] == pytest.approx(counts[k], abs=0.01)
    # Kernel: peak 1, variance var (second moment of the normalised kernel).
    assert kernel.max() == pytest.approx(1.0)
    r = np.arange(33) - 16
    w = kernel / kernel.sum()
    assert (w.sum(axis=0) * r**2).sum() == pytest.approx(var, rel=0.05 if var > 8 else 1e-3)


def test_noise2atom_pair_scales_and_draws_poisson():
    cfg = Noise2AtomConfig(peak_counts=20.0)
    c1, n1, p1 = noise2atom_pair(np.random.default_rng(5), cfg)
    c2, n2, p2 = noise2atom_pair(np.random.default_rng(5), cfg)
    assert np.array_equal(c1, c2) and np.array_equal(n1, n2) and p1 == p2
    image, _ = noise2atom_clean(np.random.default_rng(5))
    assert np.allclose(c1, 20.0 * image)
    assert np.array_equal(n1, np.round(n1))
    assert n1.sum() == pytest.approx(c1.sum(), rel=0.05)


abtem = pytest.importorskip("abtem")
from emdenoise.simulate.stem import haadf_cross_section, haadf_series  # noqa: E402

TINY_SERIES = SeriesConfig(frames=4, size=48, pixel_size_a=0.4, n_single=(3, 3), n_clusters=(1, 1), cluster_atoms=(8, 8))


def test_haadf_cross_sections_grow_with_atomic_number():
    sigma = {s: haadf_cross_section(s) for s in ("C", "O", "Ce", "Pt", "Au")}
    assert sigma["C"] < sigma["O"] < sigma["Ce"] < sigma["Pt"] < sigma["Au"]
    # Incoherent Z-contrast: the Pt/C ratio lies between Z^1.7 and Z^2 scaling.
    ratio = sigma["Pt"] / sigma["C"]
    assert (78 / 6) ** 1.7 < ratio < (78 / 6) ** 2


def test_series_shapes_ground_truth_and_dose_scaling():
    clean, noisy, record = haadf_series(np.random.default_rng(3), TINY_SERIES)
    assert clean.shape == noisy.shape == (4, 48, 48)
    assert clean.min() >= 0 and np.array_equal(noisy, np.round(noisy))
    assert len(record["pt_xy_A"]) == 4 and len(record["pt_xy_A"][0]) == 3 + sum(record["cluster_sizes"])
    doubled, _, _ = haadf_series(np.random.default_rng(3), dataclasses.replace(TINY_SERIES, dose_e_per_a2=4000.0))
    assert np.allclose(doubled, 2 * clean, rtol=1e-4, atol=1e-6)
    # Pt atoms stand out of the carbon: the brightest pixels are near a Pt atom.
    frame = clean[0]
    r, c = np.unravel_index(np.argmax(frame), frame.shape)
    x, y = c * 0.4, (47 - r) * 0.4
    pt = np.array(record["pt_xy_A"][0])
    assert np.min(np.hypot(pt[:, 0] - x, pt[:, 1] - y)) < 1.0


def test_series_static_without_motion_and_moving_with_hops():
    still = dataclasses.replace(
        TINY_SERIES, hop_probability=0.0, cluster_jitter_a=0.0, cluster_rotation_deg=0.0,
        detach_probability=0.0, drift_a_per_frame=0.0, scan_noise_rms=0.0,
    )
    clean, noisy, record = haadf_series(np.random.default_rng(8), still)
    assert np.allclose(clean, clean[0][None], atol=1e-6)
    assert not np.array_equal(noisy[0], noisy[1])  # fresh shot noise per frame
    hopping = dataclasses.replace(still, hop_probability=1.0)
    moved, _, rec2 = haadf_series(np.random.default_rng(8), hopping)
    assert np.array_equal(moved[0], clean[0])
    assert not np.allclose(moved[1], moved[0], atol=1e-3)
    assert rec2["pt_xy_A"][1][:3] != rec2["pt_xy_A"][0][:3]
