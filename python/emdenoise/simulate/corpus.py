"""General TEM corpus: diverse HRTEM/TEM images for the general denoiser (seed 001).

Seed 001 trains on ~17,000 very diverse real micrographs; none can be downloaded here,
so this module makes a stand-in with the SBD machinery (abTEM multislice, seed 003
appendix A.1): 28 crystals (metals, semiconductors, oxides, halides) at random
low-index zone axes with small off-axis tilts, as thin films, wedges, crystal edges or
nanoparticles, on or without amorphous carbon, and bare amorphous carbon; random beam
energy (80/200/300 kV), corrected or uncorrected lenses, defocus from near Gaussian
focus to strong underfocus, astigmatism, focal and angular spread, vibration, an
optional objective aperture; and pixel sizes from 0.05 to 0.5 Å.

What it can stand in for: phase-contrast HRTEM of crystals, particles, edges and
amorphous films, lattice fringes, Fresnel fringes, delocalisation and thickness and
focus-dependent contrast reversals, at atomic to few-nm fields of view.

What it cannot: low-magnification TEM (micrometre fields: cells, grains, devices, the
bulk of seed 001's corpus), diffraction and mass-thickness or strain contrast of thick
specimens, dislocations and grain boundaries (no defects besides edges and particles),
inelastic and energy-filtered contrast, beam damage, detector MTF and readout noise,
SEM and STEM. Images of those need other sources; the corpus' share of seed 001's
texture space is its atomic-resolution end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

from emdenoise.simulate.dose import bin_sum, shot_noise
from emdenoise.simulate.optics import configure_abtem, to_image_rows

C_DENSITY = 0.1003  # atoms per Å^3 in amorphous carbon of 2.0 g/cm^3


def _crystals() -> dict:
    cubic = {
        "Si": ("Si", "diamond", 5.431), "Ge": ("Ge", "diamond", 5.658),
        "Cu": ("Cu", "fcc", 3.615), "Ag": ("Ag", "fcc", 4.086), "Au": ("Au", "fcc", 4.078),
        "Pt": ("Pt", "fcc", 3.924), "Pd": ("Pd", "fcc", 3.891), "Ni": ("Ni", "fcc", 3.524),
        "Al": ("Al", "fcc", 4.05), "Fe": ("Fe", "bcc", 2.867), "W": ("W", "bcc", 3.165),
        "Mo": ("Mo", "bcc", 3.147), "NaCl": ("NaCl", "rocksalt", 5.64),
        "MgO": ("MgO", "rocksalt", 4.212), "GaAs": ("GaAs", "zincblende", 5.653),
        "InP": ("InP", "zincblende", 5.869), "ZnS": ("ZnS", "zincblende", 5.41),
        "CeO2": ("CeO2", "fluorite", 5.411), "CaF2": ("CaF2", "fluorite", 5.463),
        "ZrO2": ("ZrO2", "fluorite", 5.07), "CsCl": ("CsCl", "cesiumchloride", 4.123),
    }
    table = {k: (lambda v=v: bulk(v[0], v[1], a=v[2], cubic=True)) for k, v in cubic.items()}
    table.update(
        {
            "Ti": lambda: bulk("Ti"), "Mg": lambda: bulk("Mg"), "Zn": lambda: bulk("Zn"),
            "GaN": lambda: bulk("GaN", "wurtzite", a=3.189, c=5.185),
            "ZnO": lambda: bulk("ZnO", "wurtzite", a=3.25, c=5.207),
            "SrTiO3": lambda: crystal(
                ["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
                spacegroup=221, cellpar=[3.905, 3.905, 3.905, 90, 90, 90],
            ),
            "TiO2": lambda: crystal(
                ["Ti", "O"], basis=[(0, 0, 0), (0.3048, 0.3048, 0)], spacegroup=136,
                cellpar=[4.594, 4.594, 2.959, 90, 90, 90],
            ),
        }
    )
    return table


CRYSTALS = _crystals()
ZONE_AXES = ((0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 2), (0, 1, 2), (1, 0, 0), (1, 2, 0), (0, 1, 3))
MORPHOLOGIES = ("film", "wedge", "edge", "particles", "amorphous")


def _rotation_to_z(v: np.ndarray) -> np.ndarray:
    """Rotation matrix that takes unit vector ``v`` onto +z (Rodrigues)."""
    v = v / np.linalg.norm(v)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(v, z)
    s, c = np.linalg.norm(axis), float(v @ z)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def oriented_crystal(unit: Atoms, rotation: np.ndarray, box: tuple[float, float, float]) -> Atoms:
    """Fill ``box`` (from the origin) with the crystal ``unit`` rotated by ``rotation``.

    Lattice translations are enumerated over the fractional range spanned by the box
    corners, so any lattice and orientation works; atoms outside the box are dropped.
    """
    cell = unit.cell.array
    corners = np.array([[x, y, z] for x in (0, box[0]) for y in (0, box[1]) for z in (0, box[2])])
    frac = (corners @ rotation) @ np.linalg.inv(cell)  # rotation.T maps lab to crystal
    lo, hi = np.floor(frac.min(0)).astype(int) - 1, np.ceil(frac.max(0)).astype(int) + 1
    grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    pos = (grid[:, None, :] @ cell + unit.positions[None]).reshape(-1, 3) @ rotation.T
    symbols = np.tile(unit.get_chemical_symbols(), len(grid))
    inside = np.all((pos >= 0) & (pos < np.asarray(box)), axis=1)
    return Atoms(symbols[inside].tolist(), positions=pos[inside])


def amorphous_carbon(extent: tuple[float, float], thickness: float, z0: float, rng: np.random.Generator) -> Atoms:
    """Uniformly random carbon at 2.0 g/cm^3 (no short-range order: a speckle texture)."""
    n = int(round(C_DENSITY * extent[0] * extent[1] * thickness))
    pos = rng.uniform([0, 0, z0], [extent[0], extent[1], z0 + thickness], size=(n, 3))
    return Atoms(["C"] * n, positions=pos)


@dataclass(frozen=True)
class CorpusConfig:
    """Ranges of the general TEM corpus.

    Attributes
    ----------
    size : int
        Output side in pixels.
    bin_factor : int
        Simulation grid points per output pixel (per side).
    pixel_size_a : (float, float)
        Log-uniform range of the output pixel size [Å].
    dose : (float, float)
        Log-uniform range of the vacuum level of the clean image [counts/px].
    thickness_a : (float, float)
        Specimen thickness range [Å].
    carbon_thickness_a : (float, float)
        Amorphous carbon support range [Å] (0 means none in a third of the images).
    max_atoms : int
        Thickness is reduced when a model would exceed this (keeps CPU time bounded).
    margin : float
        Extra cell on each side, as a fraction of the field, cropped off after simulation
        (the models are not periodic).
    slice_thickness_a : float
    """

    size: int = 256
    bin_factor: int = 2
    pixel_size_a: tuple = (0.05, 0.5)
    dose: tuple = (0.45, 200.0)
    thickness_a: tuple = (10.0, 150.0)
    carbon_thickness_a: tuple = (20.0, 80.0)
    max_atoms: int = 60000
    margin: float = 0.1
    slice_thickness_a: float = 2.0

    def as_dict(self) -> dict:
        """Return the configuration as a JSON-serialisable dict."""
        return asdict(self)


def sample_corpus_params(rng: np.random.Generator, config: CorpusConfig = CorpusConfig()) -> dict:
    """Draw specimen, microscope and magnification of one corpus image."""
    energy_kv = float(rng.choice([80.0, 200.0, 300.0]))
    corrected = bool(rng.random() < 0.5)
    if corrected:
        cs_um = float(rng.uniform(-20, 20))
        defocus_nm = float(rng.uniform(-15, 15))
    else:
        cs_um = float(rng.uniform(500, 2000))
        # Scherzer underfocus sqrt(4/3 Cs lambda) is 40-90 nm for these lenses.
        lam = 12.2643 / np.sqrt(energy_kv * 1e3 * (1 + 0.97845e-6 * energy_kv * 1e3))
        scherzer = np.sqrt(4 / 3 * cs_um * 1e4 * lam) / 10
        defocus_nm = float(-scherzer * rng.uniform(0.3, 2.0)) if rng.random() < 0.8 else float(-rng.uniform(100, 1000))
    morphology = str(rng.choice(MORPHOLOGIES, p=[0.25, 0.15, 0.2, 0.25, 0.15]))
    carbon = 0.0 if rng.random() < 0.33 else float(rng.uniform(*config.carbon_thickness_a))
    if morphology == "amorphous":
        carbon = float(rng.uniform(*config.carbon_thickness_a))
    return {
        "material": str(rng.choice(sorted(CRYSTALS))),
        "zone_axis": [int(v) for v in ZONE_AXES[int(rng.integers(len(ZONE_AXES)))]],
        "off_axis_tilt_deg": float(rng.uniform(0, 3) if rng.random() < 0.5 else 0.0),
        "in_plane_rotation_deg": float(rng.uniform(0, 360)),
        "morphology": morphology,
        "thickness_A": float(rng.uniform(*config.thickness_a)),
        "carbon_thickness_A": carbon,
        "pixel_size_A": float(np.exp(rng.uniform(*np.log(config.pixel_size_a)))),
        "dose_counts_per_px": float(np.exp(rng.uniform(*np.log(config.dose)))),
        "energy_kV": energy_kv,
        "corrected": corrected,
        "Cs_um": cs_um,
        "defocus_nm": defocus_nm,
        "astigmatism_nm": float(rng.uniform(0, 3)),
        "astigmatism_angle_rad": float(rng.uniform(0, np.pi)),
        "focal_spread_nm": float(rng.uniform(2, 6)),
        "convergence_mrad": float(rng.uniform(0.1, 0.5)),
        "vibration_pm": float(rng.uniform(20, 80)),
        "aperture_mrad": float(rng.uniform(10, 30)) if rng.random() < 0.3 else None,
    }


def thin_to_atom_budget(params: dict, *, crystal_density: float, max_atoms: int, extent: float) -> dict:
    """Scale ``thickness_A`` and ``carbon_thickness_A`` down (in place) so a cell of side
    ``extent`` [Å] holds at most ``max_atoms``; records the factor as ``thinned_for_atom_budget``.

    ``crystal_density`` is the specimen's atoms per Å^3 (0 for bare amorphous carbon).
    """
    budget = max_atoms / extent**2
    total = crystal_density * params["thickness_A"] + C_DENSITY * params["carbon_thickness_A"]
    if total > budget:
        f = budget / total
        params["thickness_A"] *= f
        params["carbon_thickness_A"] *= f
        params["thinned_for_atom_budget"] = f
    return params


def build_corpus_model(params: dict, rng: np.random.Generator, extent: float) -> tuple[Atoms, dict]:
    """Build the specimen of ``params`` in a square cell of side ``extent`` [Å]."""
    t = params["thickness_A"]
    carbon_t = params["carbon_thickness_A"]
    morphology = params["morphology"]
    parts = []
    info: dict = {}
    if morphology != "amorphous":
        unit = CRYSTALS[params["material"]]()
        zone = np.asarray(params["zone_axis"], float) @ unit.cell.array
        rot = _rotation_to_z(zone)
        tilt_axis = rng.uniform(0, 2 * np.pi)
        tilt = np.radians(params["off_axis_tilt_deg"])
        tilt_rot = _axis_rotation(2, tilt_axis) @ _axis_rotation(0, tilt) @ _axis_rotation(2, -tilt_axis)
        rot = _axis_rotation(2, np.radians(params["in_plane_rotation_deg"])) @ tilt_rot @ rot
        xtal = oriented_crystal(unit, rot, (extent, extent, t))
        p = xtal.positions
        keep = np.ones(len(xtal), bool)
        if morphology == "wedge":
            direction = rng.uniform(0, 2 * np.pi)
            u = ((p[:, 0] - extent / 2) * np.cos(direction) + (p[:, 1] - extent / 2) * np.sin(direction)) / extent + 0.5
            keep = p[:, 2] < t * np.clip(u, 0.05, 1.0)
        elif morphology == "edge":
            direction = rng.uniform(0, 2 * np.pi)
            offset = rng.uniform(-0.2, 0.2) * extent
            u = (p[:, 0] - extent / 2) * np.cos(direction) + (p[:, 1] - extent / 2) * np.sin(direction)
            roughness = 1.5 * np.sin(p[:, 0] / rng.uniform(3, 12)) * np.cos(p[:, 1] / rng.uniform(3, 12))
            keep = u + roughness < offset
        elif morphology == "particles":
            n = int(rng.integers(1, 6))
            centres = rng.uniform(0.15 * extent, 0.85 * extent, size=(n, 2))
            radii = rng.uniform(5.0, max(6.0, min(0.3 * extent, t / 2)), size=n)
            zc = t / 2
            d = np.linalg.norm(
                np.stack([p[:, 0, None] - centres[:, 0], p[:, 1, None] - centres[:, 1], np.broadcast_to(p[:, 2, None] - zc, (len(p), n))], -1),
                axis=-1,
            )
            keep = np.any(d < radii, axis=1)
            info["particle_radii_A"] = radii.round(2).tolist()
        xtal = xtal[keep]
        xtal.positions[:, 2] += carbon_t
        parts.append(xtal)
    if carbon_t > 0:
        parts.append(amorphous_carbon((extent, extent), carbon_t, 0.0, rng))
    atoms = Atoms() if not parts else parts[0]
    for extra in parts[1:]:
        atoms = atoms + extra
    if len(atoms) == 0:  # e.g. particles that missed the slab: fall back to carbon
        atoms = amorphous_carbon((extent, extent), 20.0, 0.0, rng)
    lz = float(atoms.positions[:, 2].max() + 2.0) if len(atoms) else 2.0
    atoms.positions[:, 2] += 1.0
    atoms.cell = [extent, extent, lz + 1.0]
    atoms.pbc = True
    info["n_atoms"] = len(atoms)
    return atoms, info


def simulate_corpus_image(
    params: dict, rng: np.random.Generator, config: CorpusConfig = CorpusConfig(), *, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate one clean/noisy corpus image.

    The clean image is the binned intensity scaled so the incident beam (vacuum) level is
    ``dose_counts_per_px``; the noisy image is a Poisson draw of it.

    Returns
    -------
    clean, noisy : ndarray, float32, shape (size, size)
    record : dict
    """
    import abtem
    from abtem.distributions import gaussian

    configure_abtem(device)
    params = dict(params)
    pixel = params["pixel_size_A"]
    field = config.size * pixel
    margin = int(np.ceil(config.margin * config.size))
    out_px = config.size + 2 * margin
    extent = out_px * pixel
    thin_to_atom_budget(params, crystal_density=0.06 if params["morphology"] != "amorphous" else 0.0,
                        max_atoms=config.max_atoms, extent=extent)
    atoms, info = build_corpus_model(params, rng, extent)
    gpts = out_px * config.bin_factor
    sampling = extent / gpts
    potential = abtem.Potential(
        atoms, gpts=gpts, slice_thickness=config.slice_thickness_a, projection="infinite", device=device
    )
    wave = abtem.PlaneWave(energy=params["energy_kV"] * 1e3, device=device)
    exit_wave = wave.multislice(potential)
    sigma = params["focal_spread_nm"] * 10 / np.sqrt(2)
    ctf = abtem.CTF(
        energy=params["energy_kV"] * 1e3,
        C10=gaussian(sigma, 5, center=params["defocus_nm"] * 10, sampling_limit=2.5),
        C12=params["astigmatism_nm"] * 10,
        phi12=params["astigmatism_angle_rad"],
        C30=params["Cs_um"] * 1e4,
        angular_spread=params["convergence_mrad"],
        semiangle_cutoff=params["aperture_mrad"] if params["aperture_mrad"] else np.inf,
    )
    images = exit_wave.apply_ctf(ctf).intensity().reduce_ensemble()
    images = images.gaussian_filter(params["vibration_pm"] / 100)
    array = images.array.get() if hasattr(images.array, "get") else images.array
    fine = to_image_rows(np.asarray(array, np.float32))
    binned = bin_sum(fine, config.bin_factor)[margin : margin + config.size, margin : margin + config.size]
    dose = params["dose_counts_per_px"]
    clean = (binned * (dose / config.bin_factor**2)).astype(np.float32)
    noisy = shot_noise(clean, rng)
    record = {**params, **info, "field_of_view_A": field, "sim_sampling_A": sampling, "sim_gpts": gpts,
              "bin_factor": config.bin_factor, "device": device}
    return clean, noisy, record
