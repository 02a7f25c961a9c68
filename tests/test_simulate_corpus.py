"""General TEM corpus: crystal orientation, specimen building and one tiny image."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("abtem")

from emdenoise.simulate.corpus import (  # noqa: E402
    CRYSTALS,
    CorpusConfig,
    _rotation_to_z,
    build_corpus_model,
    oriented_crystal,
    sample_corpus_params,
    simulate_corpus_image,
)
from emdenoise.simulate.structures import projected_columns  # noqa: E402


@pytest.mark.parametrize("material, zone", [("Si", (0, 1, 1)), ("GaN", (0, 0, 1)), ("SrTiO3", (1, 1, 1))])
def test_zone_axis_orientation_stacks_atoms_in_columns(material, zone):
    unit = CRYSTALS[material]()
    rot = _rotation_to_z(np.asarray(zone, float) @ unit.cell.array)
    block = oriented_crystal(unit, rot, (20.0, 20.0, 30.0))
    assert len(block) > 100
    pos = block.positions
    assert np.all(pos >= 0) and np.all(pos < [20, 20, 30])
    columns = projected_columns(pos, tolerance=0.05)
    # On a zone axis many atoms share a projected position; off axis almost none do.
    assert len(block) / len(columns) > 4
    tilted = oriented_crystal(unit, _rotation_to_z(np.array([0.13, 0.07, 1.0])) @ rot, (20.0, 20.0, 30.0))
    assert len(tilted) / len(projected_columns(tilted.positions, tolerance=0.05)) < 1.5


def test_every_morphology_builds_atoms():
    cfg = CorpusConfig()
    for morphology in ("film", "wedge", "edge", "particles", "amorphous"):
        params = sample_corpus_params(np.random.default_rng(1), cfg)
        params.update(morphology=morphology, material="Au", thickness_A=30.0, carbon_thickness_A=10.0)
        atoms, info = build_corpus_model(params, np.random.default_rng(2), 40.0)
        symbols = set(atoms.get_chemical_symbols())
        assert info["n_atoms"] == len(atoms) > 0
        assert ("Au" in symbols) == (morphology != "amorphous")
        assert "C" in symbols
        assert np.all(atoms.positions[:, :2] >= 0) and np.all(atoms.positions[:, :2] < 40.0)


def test_tiny_corpus_image_dose_and_reproducibility():
    cfg = CorpusConfig(size=48, bin_factor=2, pixel_size_a=(0.3, 0.3), dose=(50.0, 50.0), thickness_a=(20.0, 20.0), carbon_thickness_a=(10.0, 10.0))
    params = sample_corpus_params(np.random.default_rng(5), cfg)
    clean, noisy, record = simulate_corpus_image(params, np.random.default_rng(6), cfg)
    again, noisy2, _ = simulate_corpus_image(params, np.random.default_rng(6), cfg)
    assert clean.shape == noisy.shape == (48, 48)
    assert np.array_equal(clean, again) and np.array_equal(noisy, noisy2)
    # Elastic scattering conserves the beam: the mean is the vacuum level (the dose),
    # less what the antialias or objective aperture removes.
    assert 0.6 * 50.0 < clean.mean() < 1.02 * 50.0
    assert clean.std() > 0.01 * 50.0  # there is contrast
    assert record["field_of_view_A"] == pytest.approx(48 * 0.3)
