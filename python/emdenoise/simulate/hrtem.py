"""SBD training images: HRTEM of Pt nanoparticles on CeO2 (seed 003, section 4, appendix A).

Each image draws its parameters from the paper's grid: support thickness 3-6 nm in
1 nm steps, tilt 0-4 degrees in 1 degree steps about x or about y, defocus 0-20 nm in
1 nm steps, four particle families (PtNp1/2: 2 nm without/with an interface column,
PtNp3: 1 nm, PtNp4: 3 nm) and five surface-defect families (D0, D1, D2, Dh, Ds). It is
simulated with abTEM on a fine grid (1024 x 1024 over a ~5 nm cell by default), binned,
scaled so the vacuum level is the dose (0.45 counts/px), and drawn with Poisson noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from emdenoise.simulate.contrast import column_contrast, contrast_label
from emdenoise.simulate.dose import SBD_DOSE, bin_sum, binned_pixel_xy, scale_to_dose, shot_noise, vacuum_mask
from emdenoise.simulate.optics import HrtemOptics, hrtem_intensity, to_image_rows
from emdenoise.simulate.structures import DEFECTS, supported_pt_on_ceo2

# Particle families of seed 003 section 5: (diameter label, untruncated atom count,
# extra interface column). Atom counts of a Pt Wulff shape of that diameter.
PARTICLE_FAMILIES = {
    "PtNp1": (2.0, 280, False),
    "PtNp2": (2.0, 280, True),
    "PtNp3": (1.0, 45, False),
    "PtNp4": (3.0, 900, False),
}


@dataclass(frozen=True)
class HrtemConfig:
    """Grid, dose and parameter ranges of the SBD simulator.

    Attributes
    ----------
    extent_a : float
        Cell side [Å] (5 nm in seed 003 A.3; rounded to whole CeO2 periods, 53.0 Å).
    gpts : int
        Simulation grid points per side (1024 in the paper).
    bin_factor : int
        Binning to the output pixel size (output side = gpts // bin_factor).
    dose : float
        Vacuum level of the clean image [counts per output pixel].
    defocus_nm : tuple of float
        Candidate defocus values (0-20 nm in 1 nm steps).
    thickness_nm : tuple of float
        Candidate support thicknesses (3-6 nm).
    tilt_deg : tuple of float
        Candidate tilt angles, applied about x or about y (0-4 degrees).
    families, defects : tuple of str
        Particle and defect families to draw from.
    support_step_probability : float
        Chance that the CeO2 surface carries a one-trilayer step.
    optics : HrtemOptics
    parametrization : str
        abTEM potential parametrisation, 'lobato' (default) or 'kirkland' (the
        cross-domain test set of issue 17, :mod:`emdenoise.simulate.crossdomain`).
    """

    extent_a: float = 50.0
    gpts: int = 1024
    bin_factor: int = 2
    dose: float = SBD_DOSE
    defocus_nm: tuple = tuple(float(v) for v in range(0, 21))
    thickness_nm: tuple = (3.0, 4.0, 5.0, 6.0)
    tilt_deg: tuple = (0.0, 1.0, 2.0, 3.0, 4.0)
    families: tuple = tuple(PARTICLE_FAMILIES)
    defects: tuple = DEFECTS
    support_step_probability: float = 0.3
    optics: HrtemOptics = field(default_factory=HrtemOptics)
    parametrization: str = "lobato"

    def as_dict(self) -> dict:
        """Return the configuration as a JSON-serialisable dict."""
        d = asdict(self)
        d["optics"] = self.optics.as_dict()
        return d


def sample_hrtem_params(rng: np.random.Generator, config: HrtemConfig = HrtemConfig()) -> dict:
    """Draw one image's parameters from the grid of seed 003 appendix A.2.

    Tilts are about one axis at a time, as in the paper ("0 x 0 y to 4 x 0 y, or
    0 x 4 y").
    """
    tilt = float(rng.choice(config.tilt_deg))
    axis = str(rng.choice(["x", "y"]))
    return {
        "family": str(rng.choice(config.families)),
        "defect": str(rng.choice(config.defects)),
        "support_thickness_nm": float(rng.choice(config.thickness_nm)),
        "tilt_x_deg": tilt if axis == "x" else 0.0,
        "tilt_y_deg": tilt if axis == "y" else 0.0,
        "defocus_nm": float(rng.choice(config.defocus_nm)),
        "support_step": bool(rng.random() < config.support_step_probability),
    }


def simulate_hrtem(
    params: dict,
    rng: np.random.Generator,
    config: HrtemConfig = HrtemConfig(),
    *,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate one clean/noisy SBD image pair (seed 003, section 4 and appendix A).

    Parameters
    ----------
    params : dict
        From :func:`sample_hrtem_params`.
    rng : numpy.random.Generator
        Drives the particle shape, position, defect site and the shot noise.
    config : HrtemConfig
    device : str
        'cpu' or 'gpu', handed to abTEM.

    Returns
    -------
    clean : ndarray, float32, shape (H, W)
        Expected counts per pixel; the vacuum mean equals ``config.dose``.
    noisy : ndarray, float32, shape (H, W)
        Poisson draw of ``clean``.
    record : dict
        Every parameter of the image, the structure, the dose scaling, the contrast
        label (``contrast``: white / black / intermediate) and the Pt column centres in
        output pixels (``pt_columns_rc``: [row, col] pairs), the ground truth of which
        detected columns are the particle's.
    """
    _, atoms_n, interface = PARTICLE_FAMILIES[params["family"]]
    model = supported_pt_on_ceo2(
        rng,
        extent=config.extent_a,
        support_thickness=params["support_thickness_nm"] * 10.0,
        particle_atoms=atoms_n,
        tilt_x=params["tilt_x_deg"],
        tilt_y=params["tilt_y_deg"],
        defect=params["defect"],
        interface_column=interface,
        support_step=params["support_step"],
    )
    cell = model.atoms.cell.lengths()
    gpts = int(config.gpts) - int(config.gpts) % int(config.bin_factor)
    sampling = cell[0] / gpts
    intensity = hrtem_intensity(
        model.atoms, sampling=sampling, defocus_nm=params["defocus_nm"], optics=config.optics, device=device,
        parametrization=config.parametrization,
    )
    fine = to_image_rows(intensity)
    binned = bin_sum(fine, config.bin_factor)
    pixel = sampling * config.bin_factor
    x, y = binned_pixel_xy(binned.shape, sampling, config.bin_factor, fine.shape[0])
    mask = vacuum_mask(model.atoms.positions[:, :2], x, y, cell=(cell[0], cell[1]))
    clean, factor = scale_to_dose(binned, mask, config.dose)
    noisy = shot_noise(clean, rng)
    half = (config.bin_factor - 1) / 2.0
    cols = (model.pt_columns[:, 0] / sampling - half) / config.bin_factor
    rows = (fine.shape[0] - 1 - model.pt_columns[:, 1] / sampling - half) / config.bin_factor
    contrast = column_contrast(clean, np.stack([rows, cols], 1), pixel, config.dose)
    record = {
        **params,
        **model.info,
        "pixel_size_A": float(pixel),
        "sim_sampling_A": float(sampling),
        "sim_gpts": gpts,
        "bin_factor": int(config.bin_factor),
        "dose_counts_per_px": float(config.dose),
        "intensity_scale": float(factor),
        "vacuum_fraction": float(mask.mean()),
        "pt_column_contrast": float(np.nanmedian(contrast)) if np.isfinite(contrast).any() else None,
        "pt_columns_rc": np.round(np.stack([rows, cols], 1), 2).tolist(),
        "contrast": contrast_label(contrast),
        "optics": config.optics.as_dict(),
        "parametrization": config.parametrization,
        "device": device,
    }
    return clean, noisy, record
