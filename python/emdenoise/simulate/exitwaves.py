"""A bank of multislice exit waves: the expensive half of HRTEM simulation, done once (issue 17, item 2).

Seed 003 (SBD, appendix A.1) simulates every training image with a full multislice run.
The exit wave of a specimen does not depend on the lens, the coherence, the dose or the
detector, so this module computes exit waves once, stores them in a cache outside the
repository, and :mod:`emdenoise.simulate.imaging` turns each stored wave into many
training images in milliseconds.

Specimens (all lengths in Å, beam along +z, square cell of side ``extent_a``):

* the general TEM corpus' morphologies (:mod:`emdenoise.simulate.corpus`): crystals at
  low-index zone axes with small off-axis tilts as films, wedges, edges, spherical
  particles cut from the crystal, on or without amorphous carbon, and bare amorphous
  carbon;
* ``supported``: a faceted fcc metal particle (Wulff shape, ASE) at a random zone axis
  sitting on the free surface of an oxide, nitride or semiconductor support seen edge-on
  (the profile geometry of seed 003 appendix A.3, with other materials);
* ``faceted``: one to four faceted metal particles at random orientations on amorphous
  carbon (plan view).

Held out for the cross-domain test set (:mod:`emdenoise.simulate.crossdomain`): no
structure contains Pt or Ce (so neither Pt particles nor CeO2), and fluorite-structured
crystals (CaF2, ZrO2) never serve as a particle support, since a metal on a fluorite
(111) surface in profile is the test family's geometry. Potentials use the ``lobato``
parametrisation only (the test set uses ``kirkland``).

Grid: the multislice runs on ``sim_gpts`` = 768 points over 51.2 Å (0.0667 Å); abTEM's
antialiasing aperture keeps 2/3 of that grid's Nyquist frequency, i.e. spatial
frequencies up to 5 1/Å, so the wave is stored Fourier-cropped to ``store_gpts`` = 512
points (0.1 Å, Nyquist 5 1/Å) without losing anything the aperture passed: 2 MB of
complex64 per wave. An image is bandlimited by the lens envelopes to well below 2.5 1/Å,
so its intensity (twice the wave's band) is not aliased on the stored grid. Measured
cost: 6.4 s for a 133 Å-thick Au film on carbon (23,000 atoms, 66 slices) on one
thread, against 21 s on a 1024-point grid.

Files: ``<bank>/wave-s<seed>-<index>.npz`` holding ``wave`` (complex64, ``[x, y]`` as
abTEM orders it) and ``meta`` (a JSON string: structure, energy, sampling, grid,
thickness, parametrisation), written atomically; existing files are skipped, and wave
``index`` depends only on ``(seed, index)``. ``bank.json`` records the configuration.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms
from ase.cluster import wulff_construction

from emdenoise.simulate.corpus import (
    CRYSTALS,
    ZONE_AXES,
    _axis_rotation,
    _rotation_to_z,
    amorphous_carbon,
    build_corpus_model,
    oriented_crystal,
    thin_to_atom_budget,
)

BANK_VERSION = "v1"
BANK_FORMAT = "emdenoise-exitwaves/1"

#: Elements no bank structure contains: the cross-domain test family is Pt on CeO2.
HELD_OUT_ELEMENTS = ("Pt", "Ce")
#: Crystals of the corpus morphologies (films, wedges, edges, cut particles).
BANK_MATERIALS = tuple(m for m in sorted(CRYSTALS) if m not in ("Pt", "CeO2"))
#: fcc metals of the faceted particles, with lattice constants [Å].
PARTICLE_METALS = {"Au": 4.078, "Ag": 4.086, "Pd": 3.891, "Cu": 3.615, "Ni": 3.524,
                   "Ir": 3.839, "Rh": 3.803, "Al": 4.05}
#: Supports of ``supported`` particles: no fluorites (CeO2's structure, see the module notes).
SUPPORTS = ("MgO", "TiO2", "SrTiO3", "ZnO", "GaN", "Si", "GaAs", "NaCl", "Ge")
MORPHOLOGIES = ("film", "wedge", "edge", "particles", "amorphous", "supported", "faceted")
MORPHOLOGY_P = (0.15, 0.1, 0.15, 0.1, 0.1, 0.25, 0.15)
ENERGIES_KV = (80.0, 200.0, 300.0)


@dataclass(frozen=True)
class BankConfig:
    """Grid and specimen ranges of the exit-wave bank.

    Attributes
    ----------
    extent_a : float
        Cell side [Å].
    sim_gpts : int
        Multislice grid points per side.
    store_gpts : int
        Stored grid points per side (Fourier crop of the exit wave).
    slice_thickness_a : float
        Multislice slice thickness [Å] (see :class:`emdenoise.simulate.optics.HrtemOptics`).
    parametrization : str
        abTEM potential parametrisation (``lobato``; ``kirkland`` is held out).
    thickness_a, carbon_thickness_a : (float, float)
        Specimen and amorphous-carbon thickness ranges [Å].
    particle_diameter_a : (float, float)
        Faceted particle diameters [Å].
    max_atoms : int
        Specimens are thinned below this many atoms (bounds the cost of a wave).
    """

    extent_a: float = 51.2
    sim_gpts: int = 768
    store_gpts: int = 512
    slice_thickness_a: float = 2.0
    parametrization: str = "lobato"
    thickness_a: tuple = (10.0, 150.0)
    carbon_thickness_a: tuple = (20.0, 80.0)
    particle_diameter_a: tuple = (10.0, 40.0)
    max_atoms: int = 40000

    def as_dict(self) -> dict:
        """Return the configuration as a JSON-serialisable dict."""
        return asdict(self)


def cache_root() -> Path:
    """emdenoise's cache: ``$EMDENOISE_CACHE``, else ``~/.cache/emdenoise``."""
    env = os.environ.get("EMDENOISE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emdenoise"


def default_bank_dir() -> Path:
    """``<cache>/exitwaves/<BANK_VERSION>``."""
    return cache_root() / "exitwaves" / BANK_VERSION


def wave_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of wave ``index`` in a bank with ``seed`` (nothing else enters)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 17]))


def wave_path(directory: str | Path, seed: int, index: int) -> Path:
    """File of wave ``index`` of a bank with ``seed``."""
    return Path(directory) / f"wave-s{int(seed)}-{int(index):06d}.npz"


def sample_wave_params(rng: np.random.Generator, config: BankConfig = BankConfig()) -> dict:
    """Draw the specimen and beam energy of one exit wave."""
    morphology = str(rng.choice(MORPHOLOGIES, p=MORPHOLOGY_P))
    carbon = 0.0 if rng.random() < 0.4 else float(rng.uniform(*config.carbon_thickness_a))
    if morphology in ("amorphous", "faceted"):
        carbon = float(rng.uniform(*config.carbon_thickness_a))
    params = {
        "morphology": morphology,
        "energy_kV": float(rng.choice(ENERGIES_KV)),
        "material": str(rng.choice(BANK_MATERIALS)),
        "zone_axis": [int(v) for v in ZONE_AXES[int(rng.integers(len(ZONE_AXES)))]],
        "off_axis_tilt_deg": float(rng.uniform(0, 3) if rng.random() < 0.5 else 0.0),
        "in_plane_rotation_deg": float(rng.uniform(0, 360)),
        "thickness_A": float(rng.uniform(*config.thickness_a)),
        "carbon_thickness_A": carbon,
    }
    if morphology in ("supported", "faceted"):
        params["metal"] = str(rng.choice(sorted(PARTICLE_METALS)))
        params["particle_diameter_A"] = float(rng.uniform(*config.particle_diameter_a))
        params["particle_zone_axis"] = [int(v) for v in ZONE_AXES[int(rng.integers(len(ZONE_AXES)))]]
    if morphology == "supported":
        params["material"] = str(rng.choice(SUPPORTS))
        params["thickness_A"] = float(rng.uniform(20.0, 80.0))
        params["support_height_fraction"] = float(rng.uniform(0.25, 0.55))
    if morphology == "faceted":
        params["n_particles"] = int(rng.integers(1, 5))
    return params


def faceted_particle(metal: str, diameter: float, rng: np.random.Generator) -> Atoms:
    """A Wulff-shaped fcc particle of about ``diameter`` Å, centred on the origin.

    Surface energies of {111}, {100}, {110} are jittered so that facet proportions vary
    (as :func:`emdenoise.simulate.structures.pt_particle` does for seed 003's Pt).
    """
    a = PARTICLE_METALS[metal]
    n_atoms = max(13, int(round(np.pi / 6 * diameter**3 * 4 / a**3)))
    energies = [1.0, 1.0 + rng.uniform(0.05, 0.3), 1.0 + rng.uniform(0.15, 0.5)]
    cluster = wulff_construction(metal, [(1, 1, 1), (1, 0, 0), (1, 1, 0)], energies, n_atoms, "fcc",
                                 rounding="closest", latticeconstant=a)
    pos = cluster.positions - cluster.positions.mean(axis=0)
    return Atoms([metal] * len(pos), positions=pos)


def _zone_rotation(zone_axis, rng: np.random.Generator, tilt_deg: float = 0.0) -> np.ndarray:
    """Rotation taking a cubic ``zone_axis`` onto +z, tilted off it and turned in plane."""
    rot = _rotation_to_z(np.asarray(zone_axis, float))
    axis = rng.uniform(0, 2 * np.pi)
    tilt = _axis_rotation(2, axis) @ _axis_rotation(0, np.radians(tilt_deg)) @ _axis_rotation(2, -axis)
    return _axis_rotation(2, rng.uniform(0, 2 * np.pi)) @ tilt @ rot


def _supported_model(params: dict, rng: np.random.Generator, extent: float) -> tuple[Atoms, dict]:
    """A faceted particle on a support seen edge-on (surface facing +y), on optional carbon."""
    unit = CRYSTALS[params["material"]]()
    zone = np.asarray(params["zone_axis"], float) @ unit.cell.array
    rot = _axis_rotation(2, np.radians(rng.choice([0.0, 90.0, 180.0, 270.0]) + rng.uniform(-5, 5))) @ _rotation_to_z(zone)
    t = params["thickness_A"]
    y_top = params["support_height_fraction"] * extent
    support = oriented_crystal(unit, rot, (extent, y_top, t))
    particle = faceted_particle(params["metal"], params["particle_diameter_A"], rng)
    pos = particle.positions @ _zone_rotation(params["particle_zone_axis"], rng, params["off_axis_tilt_deg"]).T
    bottom = pos[:, 1].min()
    pos = pos[pos[:, 1] > bottom + rng.uniform(0.5, 4.0)]  # flat interface: cut the lowest layers
    pos[:, 1] += y_top + 2.2 - pos[:, 1].min()
    pos[:, 0] += rng.uniform(0.3, 0.7) * extent
    pos[:, 2] += t / 2
    keep = (pos[:, 0] >= 0) & (pos[:, 0] < extent) & (pos[:, 1] < extent)
    pos = pos[keep]
    metal = Atoms([params["metal"]] * len(pos), positions=pos)
    atoms = support + metal
    atoms.positions[:, 2] -= min(0.0, atoms.positions[:, 2].min())
    info = {"particle_atoms": len(metal), "support_atoms": len(support)}
    return atoms, info


def _faceted_model(params: dict, rng: np.random.Generator, extent: float) -> tuple[Atoms, dict]:
    """One to four faceted particles at random orientations on top of amorphous carbon."""
    parts = []
    for _ in range(params["n_particles"]):
        d = params["particle_diameter_A"] * rng.uniform(0.6, 1.2)
        particle = faceted_particle(params["metal"], d, rng)
        zone = params["particle_zone_axis"] if rng.random() < 0.6 else ZONE_AXES[int(rng.integers(len(ZONE_AXES)))]
        pos = particle.positions @ _zone_rotation(zone, rng, rng.uniform(0, 6)).T
        pos[:, :2] += rng.uniform(0.15 * extent, 0.85 * extent, size=2)
        pos[:, 2] += -pos[:, 2].min()
        pos = pos[(pos[:, 0] >= 0) & (pos[:, 0] < extent) & (pos[:, 1] >= 0) & (pos[:, 1] < extent)]
        parts.append(Atoms([params["metal"]] * len(pos), positions=pos))
    atoms = parts[0]
    for extra in parts[1:]:
        atoms = atoms + extra
    return atoms, {"particle_atoms": len(atoms)}


def build_wave_model(params: dict, rng: np.random.Generator, extent: float) -> tuple[Atoms, dict]:
    """Build the specimen of ``params`` in a periodic square cell of side ``extent`` [Å]."""
    morphology = params["morphology"]
    if morphology not in ("supported", "faceted"):
        return build_corpus_model(params, rng, extent)
    atoms, info = (_supported_model if morphology == "supported" else _faceted_model)(params, rng, extent)
    carbon_t = params["carbon_thickness_A"]
    atoms.positions[:, 2] += carbon_t
    if carbon_t > 0:
        atoms = amorphous_carbon((extent, extent), carbon_t, 0.0, rng) + atoms
    atoms.positions[:, 2] += 1.0
    atoms.cell = [extent, extent, float(atoms.positions[:, 2].max() + 2.0)]
    atoms.pbc = True
    info["n_atoms"] = len(atoms)
    return atoms, info


def _thin_to_budget(params: dict, config: BankConfig) -> dict:
    """Scale thicknesses down so the specimen stays under ``max_atoms`` (as the corpus does)."""
    density = 0.0 if params["morphology"] in ("amorphous", "faceted") else 0.06
    return thin_to_atom_budget(dict(params), crystal_density=density, max_atoms=config.max_atoms,
                               extent=config.extent_a)


def fourier_crop(wave: np.ndarray, gpts: int) -> np.ndarray:
    """Keep the central ``gpts x gpts`` spatial frequencies of ``wave`` (same amplitude scale)."""
    n = wave.shape[-1]
    if gpts == n:
        return wave
    spectrum = np.fft.fftshift(np.fft.fft2(wave))
    lo = n // 2 - gpts // 2
    cropped = np.fft.ifftshift(spectrum[lo : lo + gpts, lo : lo + gpts])
    return (np.fft.ifft2(cropped) * (gpts / n) ** 2).astype(np.complex64)


def compute_exit_wave(params: dict, rng: np.random.Generator, config: BankConfig = BankConfig()) -> tuple[np.ndarray, dict]:
    """Multislice exit wave of one specimen (seed 003, appendix A.1, with abTEM).

    Returns
    -------
    wave : ndarray, complex64, shape (store_gpts, store_gpts)
        Exit wave on abTEM's ``[x, y]`` grid, normalised so the incident beam is 1.
    meta : dict
        Parameters, structure description, energy, sampling, grid, thickness and
        parametrisation (JSON-serialisable).
    """
    import abtem

    from emdenoise.simulate.optics import configure_abtem

    configure_abtem("cpu")
    params = _thin_to_budget(params, config)
    atoms, info = build_wave_model(params, rng, config.extent_a)
    symbols = sorted(set(atoms.get_chemical_symbols()))
    held = [s for s in symbols if s in HELD_OUT_ELEMENTS]
    if held:
        raise AssertionError(f"bank specimen contains held-out element(s) {held}")
    potential = abtem.Potential(atoms, gpts=config.sim_gpts, slice_thickness=config.slice_thickness_a,
                                projection="infinite", parametrization=config.parametrization)
    wave = abtem.PlaneWave(energy=params["energy_kV"] * 1e3).multislice(potential).array
    wave = fourier_crop(np.asarray(wave, np.complex64), config.store_gpts)
    meta = {
        **params,
        **info,
        "elements": symbols,
        "specimen_thickness_A": float(atoms.cell.lengths()[2]),
        "energy_eV": params["energy_kV"] * 1e3,
        "extent_A": config.extent_a,
        "sampling_A": config.extent_a / config.store_gpts,
        "gpts": config.store_gpts,
        "sim_gpts": config.sim_gpts,
        "sim_sampling_A": config.extent_a / config.sim_gpts,
        "slice_thickness_A": config.slice_thickness_a,
        "parametrization": config.parametrization,
        "projection": "infinite",
        "bank_version": BANK_VERSION,
        "order": "xy",
    }
    return wave, meta


def _atomic_savez(path: Path, **arrays) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_wave(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read one bank file: ``(wave complex64 [x, y], meta dict)``."""
    with np.load(path) as data:
        return data["wave"], json.loads(str(data["meta"]))


def generate_bank(directory: str | Path | None = None, *, n: int, seed: int = 0, start: int = 0,
                  config: BankConfig = BankConfig(), log: Callable[[str], None] = print) -> dict:
    """Compute waves ``start .. n-1`` of a bank (skipping files that exist).

    Parameters
    ----------
    directory : path or None
        Bank folder; None for :func:`default_bank_dir`.
    n : int
        Number of waves in the bank.
    seed : int
    start : int
        First index to compute (splits a bank between processes).
    config : BankConfig
        A folder written with another configuration is refused.
    log : callable
        Receives one line per wave.

    Returns
    -------
    dict
        ``out``, ``made``, ``skipped``, ``seconds`` and ``seconds_per_wave``.
    """
    directory = Path(directory) if directory is not None else default_bank_dir()
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "bank.json"
    identity = {"format": BANK_FORMAT, "version": BANK_VERSION, "config": json.loads(json.dumps(config.as_dict()))}
    if manifest.is_file():
        existing = json.loads(manifest.read_text())
        if {k: existing.get(k) for k in identity} != identity:
            raise ValueError(f"{directory} holds an exit-wave bank with another configuration; use another folder")
    else:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bank.json.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(identity, indent=1))
        os.chmod(tmp, 0o644)
        os.replace(tmp, manifest)
    made, skipped, seconds = 0, 0, 0.0
    for index in range(int(start), int(n)):
        path = wave_path(directory, seed, index)
        if path.is_file():
            skipped += 1
            continue
        t0 = time.perf_counter()
        rng = wave_rng(seed, index)
        wave, meta = compute_exit_wave(sample_wave_params(rng, config), rng, config)
        meta.update(seed=int(seed), index=int(index))
        dt = time.perf_counter() - t0
        meta["seconds"] = round(dt, 2)
        _atomic_savez(path, wave=wave, meta=np.array(json.dumps(meta)))
        made += 1
        seconds += dt
        log(f"{path.name}: {meta['morphology']} {meta.get('metal', '')}{'/' if 'metal' in meta else ''}"
            f"{meta['material']} {meta['n_atoms']} atoms {meta['energy_kV']:g} kV in {dt:.1f} s")
    return {"out": str(directory), "made": made, "skipped": skipped, "seconds": seconds,
            "seconds_per_wave": seconds / made if made else None}


def bank_files(directory: str | Path | None = None) -> list[Path]:
    """Sorted wave files of a bank folder."""
    directory = Path(directory) if directory is not None else default_bank_dir()
    return sorted(directory.glob("wave-s*-*.npz"))
