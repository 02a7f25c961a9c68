"""Physics of the SBD HRTEM simulator (seed 003) on tiny grids: dose, contrast, binning."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("abtem")

from emdenoise.simulate.contrast import contrast_label  # noqa: E402
from emdenoise.simulate.dose import bin_sum, binned_pixel_xy, scale_to_dose, vacuum_mask  # noqa: E402
from emdenoise.simulate.hrtem import HrtemConfig, sample_hrtem_params, simulate_hrtem  # noqa: E402
from emdenoise.simulate.optics import HrtemOptics  # noqa: E402
from emdenoise.simulate.structures import (  # noqa: E402
    apply_defect,
    projected_columns,
    pt_particle,
    supported_pt_on_ceo2,
)

# A 26.5 Å cell on a 256 grid (0.1 Å), 4 Å slices and 3 focal-spread samples: about a
# third of a second per image once abTEM's numba kernels are compiled.
TINY = HrtemConfig(extent_a=30.0, gpts=256, bin_factor=2, optics=HrtemOptics(focal_samples=3, slice_thickness_a=4.0))


def _params(defocus_nm: float, **over) -> dict:
    p = {
        "family": "PtNp3",
        "defect": "D0",
        "support_thickness_nm": 3.0,
        "tilt_x_deg": 0.0,
        "tilt_y_deg": 0.0,
        "defocus_nm": float(defocus_nm),
        "support_step": False,
    }
    p.update(over)
    return p


@pytest.fixture(scope="module")
def focus_pair():
    """The same model imaged at 0 nm and at 10 nm overfocus."""
    out = {}
    for df in (0.0, 10.0):
        out[df] = simulate_hrtem(_params(df), np.random.default_rng(7), TINY)
    return out


def test_vacuum_level_equals_dose_and_noise_is_poisson(focus_pair):
    clean, noisy, record = focus_pair[10.0]
    assert clean.dtype == np.float32 and noisy.dtype == np.float32
    assert clean.shape == (128, 128)
    # Rebuild the vacuum mask the simulator used and check the scaled level.
    model = supported_pt_on_ceo2(
        np.random.default_rng(7), extent=TINY.extent_a, support_thickness=30.0, particle_atoms=45,
        tilt_x=0, tilt_y=0,
    )
    sampling = record["sim_sampling_A"]
    x, y = binned_pixel_xy(clean.shape, sampling, 2, 256)
    mask = vacuum_mask(model.atoms.positions[:, :2], x, y, cell=(record["cell_extent_A"],) * 2)
    assert mask.mean() == pytest.approx(record["vacuum_fraction"])
    assert clean[mask].mean() == pytest.approx(0.45, rel=1e-5)
    # abTEM's plane wave has intensity 1 in vacuum, so 2x2 binning gives 4 and the
    # scale factor must be about 0.45 / 4 (Fresnel fringes move it by well under 1 %).
    assert record["intensity_scale"] == pytest.approx(0.45 / 4, rel=0.01)
    # Poisson: integer counts, vacuum mean within 5 standard errors of the dose.
    assert np.array_equal(noisy, np.round(noisy))
    n_vac = mask.sum()
    assert abs(noisy[mask].mean() - 0.45) < 5 * np.sqrt(0.45 / n_vac)
    assert noisy[mask].var() == pytest.approx(0.45, rel=0.2)


def test_defocus_changes_and_reverses_column_contrast(focus_pair):
    """Seed 003 Fig. 6: Pt columns dark at Gaussian focus, white at overfocus (Cs < 0)."""
    c0, _, r0 = focus_pair[0.0]
    c10, _, r10 = focus_pair[10.0]
    assert r0["pt_column_contrast"] < -0.03 and r0["contrast"] == "black"
    assert r10["pt_column_contrast"] > 0.1 and r10["contrast"] == "white"
    particle = slice(0, 64)  # top half holds the particle and vacuum
    corr = np.corrcoef(c0[particle].ravel(), c10[particle].ravel())[0, 1]
    assert corr < 0.5


def test_contrast_label_thresholds():
    assert contrast_label([0.2, 0.1, 0.3]) == "white"
    assert contrast_label([-0.2, -0.1, 0.01]) == "black"
    assert contrast_label([0.01, -0.02]) == "intermediate"
    assert contrast_label([np.nan]) == "intermediate"


def test_binning_preserves_counts():
    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, size=(2, 64, 96)).astype(np.float32)
    binned = bin_sum(counts, 4)
    assert binned.shape == (2, 16, 24)
    assert binned.sum() == counts.sum()
    assert binned[1, 3, 5] == counts[1, 12:16, 20:24].sum()
    assert bin_sum(counts, 1) is counts
    # A remainder that does not fill a block is dropped, not smeared.
    assert bin_sum(counts[:, :63, :95], 4).shape == (2, 15, 23)


def test_scale_to_dose_and_vacuum_mask_periodic():
    atoms = np.array([[0.5, 0.5]])
    x = y = np.arange(10) + 0.5
    mask = vacuum_mask(atoms, x, y, cell=(10.0, 10.0), min_distance=2.0)
    # The atom at (0.5, 0.5) also shadows pixels across the periodic boundary.
    assert not mask[9, 9] and not mask[0, 0] and mask[5, 5]
    image = np.full((10, 10), 2.0)
    scaled, factor = scale_to_dose(image, mask, 0.45)
    assert factor == pytest.approx(0.225) and scaled[mask].mean() == pytest.approx(0.45)
    with pytest.raises(ValueError, match="vacuum"):
        scale_to_dose(image, np.zeros_like(mask), 0.45)


def test_defect_families_remove_the_right_atoms():
    base = pt_particle(280, np.random.default_rng(1), truncation_layers=1)
    counts = {}
    for defect in ("D0", "D1", "D2", "Dh", "Ds"):
        atoms, sites = apply_defect(base, defect, np.random.default_rng(2))
        counts[defect] = (len(atoms), len(sites))
    n0 = len(base)
    col_len = {len(c) for c in projected_columns(base.positions)}
    assert counts["D0"] == (n0, 0)
    assert counts["D1"][1] == 1 and n0 - counts["D1"][0] in col_len
    assert counts["D2"][1] == 2 and counts["D2"][0] < counts["D1"][0]
    # Dh halves a column (rounded down), Ds leaves one atom of it.
    removed_h, removed_s = n0 - counts["Dh"][0], n0 - counts["Ds"][0]
    assert removed_h >= 1 and removed_s >= removed_h
    assert any(removed_h == k // 2 and removed_s == k - 1 for k in col_len)


def test_supported_model_geometry():
    m = supported_pt_on_ceo2(
        np.random.default_rng(5), extent=50.0, support_thickness=40.0, particle_atoms=280,
        tilt_x=3.0, tilt_y=0.0, interface_column=True,
    )
    symbols = np.array(m.atoms.get_chemical_symbols())
    assert (symbols == "O").sum() == 2 * (symbols == "Ce").sum()  # stoichiometric CeO2
    pos = m.atoms.positions
    lx, ly, lz = m.atoms.cell.lengths()
    assert np.all(pos >= 0) and np.all(pos[:, 0] < lx) and np.all(pos[:, 1] < ly) and np.all(pos[:, 2] < lz)
    assert lx == pytest.approx(4 * 5.411 * np.sqrt(6))  # whole CeO2 periods, ~5 nm
    assert m.info["support_thickness_A"] == pytest.approx(10 * 5.411 / np.sqrt(2))
    assert pos[symbols == "Pt", 1].min() > pos[symbols == "Ce", 1].max()  # particle on top
    assert len(m.pt_columns) >= 20


def test_sampled_parameters_follow_the_paper_grid():
    rng = np.random.default_rng(0)
    draws = [sample_hrtem_params(rng) for _ in range(400)]
    assert {d["defocus_nm"] for d in draws} <= set(np.arange(21.0))
    assert {d["support_thickness_nm"] for d in draws} == {3.0, 4.0, 5.0, 6.0}
    assert all(d["tilt_x_deg"] == 0.0 or d["tilt_y_deg"] == 0.0 for d in draws)
    assert {max(d["tilt_x_deg"], d["tilt_y_deg"]) for d in draws} == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert {d["family"] for d in draws} == {"PtNp1", "PtNp2", "PtNp3", "PtNp4"}
    assert {d["defect"] for d in draws} == {"D0", "D1", "D2", "Dh", "Ds"}
