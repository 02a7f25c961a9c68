"""STEM images for Noise2Atom (seed 004): the clean Gaussian-peak domain and HAADF series.

:func:`noise2atom_clean` is the paper's clean-domain sampler ("Implementation details",
Datasets, item 1). :func:`haadf_series` is a test bench the paper does not have: a
low-dose HAADF movie of Pt atoms and clusters hopping on thin amorphous carbon, in the
incoherent (Z-contrast) imaging model, with its ground truth kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve


def gaussian_kernel(size: int, variance: float) -> np.ndarray:
    """A ``size`` x ``size`` 2-D Gaussian with peak 1 and the given variance [px^2]."""
    r = np.arange(size) - (size - 1) / 2.0
    return np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * variance))


def noise2atom_clean(
    rng: np.random.Generator,
    *,
    lattice: int = 256,
    crop: int = 128,
    positions: tuple[int, int] = (75, 150),
    atoms_per_position: tuple[int, int] = (1, 4),
    kernel_size: int = 33,
    variance: tuple[float, float] = (1.0, 10.0),
) -> tuple[np.ndarray, dict]:
    """Sample one clean atomic image of the Noise2Atom target domain (seed 004).

    "We randomly sampled 75-150 atomic positions in a 2D 256 x 256 pixel lattice. Then,
    we randomly assigned 1-4 atoms to each of the positions. Afterward, we generated a
    33 x 33 pixel 2D Gaussian kernel with a random variance in the range [1.0, 10.0].
    Then, this kernel was convolved with the 2D lattice, and the 128 x 128 pixels from
    the center of the image was cropped as our simulated clean image."

    Ranges are inclusive integers for counts and uniform for the variance. The kernel has
    peak 1, so an isolated position with k atoms peaks at k. The paper does not say how
    the image is normalised afterwards; none is applied here.

    Parameters
    ----------
    rng : numpy.random.Generator
    lattice, crop, kernel_size : int
    positions, atoms_per_position : (int, int)
        Inclusive ranges.
    variance : (float, float)
        Range of the Gaussian variance [px^2].

    Returns
    -------
    image : ndarray, float32, shape (crop, crop)
    params : dict
        ``n_positions``, ``variance``, and ``positions_rc``/``atoms`` of every sampled
        position in crop coordinates (positions outside the crop included).
    """
    n = int(rng.integers(positions[0], positions[1] + 1))
    flat = rng.choice(lattice * lattice, size=n, replace=False)
    counts = rng.integers(atoms_per_position[0], atoms_per_position[1] + 1, size=n)
    var = float(rng.uniform(*variance))
    grid = np.zeros((lattice, lattice))
    rows, cols = np.divmod(flat, lattice)
    grid[rows, cols] = counts
    full = fftconvolve(grid, gaussian_kernel(kernel_size, var), mode="same")
    o = (lattice - crop) // 2
    image = np.clip(full[o : o + crop, o : o + crop], 0, None).astype(np.float32)
    params = {
        "n_positions": n,
        "variance": var,
        "kernel_size": kernel_size,
        "lattice": lattice,
        "crop_offset": o,
        "positions_rc": np.stack([rows - o, cols - o], 1).tolist(),
        "atoms": counts.tolist(),
    }
    return image, params


@dataclass(frozen=True)
class Noise2AtomConfig:
    """Settings of the clean-domain sampler (seed 004 defaults) plus a paired noisy copy.

    ``peak_counts`` scales the clean image (a one-atom peak is 1) before the Poisson draw
    of the ``noisy`` copy; Noise2Atom itself trains unpaired and uses only the clean one.
    """

    lattice: int = 256
    crop: int = 128
    positions: tuple = (75, 150)
    atoms_per_position: tuple = (1, 4)
    kernel_size: int = 33
    variance: tuple = (1.0, 10.0)
    peak_counts: float = 5.0

    def as_dict(self) -> dict:
        """Return the configuration as a JSON-serialisable dict."""
        return asdict(self)


def noise2atom_pair(rng: np.random.Generator, config: Noise2AtomConfig = Noise2AtomConfig()) -> tuple[np.ndarray, np.ndarray, dict]:
    """One clean-domain image (seed 004) scaled to ``peak_counts`` and its Poisson draw."""
    image, params = noise2atom_clean(
        rng, lattice=config.lattice, crop=config.crop, positions=tuple(config.positions),
        atoms_per_position=tuple(config.atoms_per_position), kernel_size=config.kernel_size,
        variance=tuple(config.variance),
    )
    clean = (image * config.peak_counts).astype(np.float32)
    noisy = rng.poisson(clean).astype(np.float32)
    return clean, noisy, {**params, "peak_counts": config.peak_counts}


# --- HAADF series -----------------------------------------------------------------


@lru_cache(maxsize=None)
def haadf_cross_section(symbol: str, inner_mrad: float = 70.0, outer_mrad: float = 200.0, energy_ev: float = 300e3) -> float:
    """Kinematic elastic cross-section of one atom into an annular detector [Å^2].

    sigma = gamma^2 * integral |f(theta / lambda)|^2 2 pi theta d theta over the
    detector, with abTEM's Lobato-Van Dyck electron scattering factors. The incoherent
    imaging model then gives the HAADF signal of an atom at r0 for a probe at r as
    sigma * P(r - r0), P the normalised probe intensity.
    """
    from abtem.core.energy import energy2wavelength
    from abtem.parametrizations import LobatoParametrization

    wavelength = energy2wavelength(energy_ev)
    gamma = 1.0 + energy_ev / 510998.95
    theta = np.linspace(inner_mrad, outer_mrad, 4001) * 1e-3
    f = LobatoParametrization().scattering_factor(symbol)((theta / wavelength) ** 2)
    return float(gamma**2 * np.trapezoid(np.abs(f) ** 2 * 2 * np.pi * theta, theta))


def probe_intensity(gpts: int, sampling: float, *, semiangle_mrad: float, defocus_a: float, energy_ev: float, device: str = "cpu") -> np.ndarray:
    """Aberration-corrected probe intensity from abTEM, normalised to integrate to 1 [1/Å^2].

    The probe is centred at pixel (0, 0) (wrapped), ready for FFT convolution.
    """
    import abtem

    from emdenoise.simulate.optics import configure_abtem

    configure_abtem(device)
    probe = abtem.Probe(
        energy=energy_ev, semiangle_cutoff=semiangle_mrad, gpts=gpts, sampling=sampling, C10=-defocus_a, device=device
    )
    array = probe.build().intensity().array
    if hasattr(array, "get"):
        array = array.get()
    array = np.asarray(array, dtype=np.float64)
    peak = np.unravel_index(np.argmax(array), array.shape)
    array = np.roll(array, (-peak[0], -peak[1]), axis=(0, 1))
    return array / (array.sum() * sampling**2)


def _splat(positions: np.ndarray, weights: np.ndarray, gpts: int, sampling: float) -> np.ndarray:
    """Bilinear deposit of ``weights`` at (x, y) [Å] onto a periodic [x, y] grid, per Å^2."""
    grid = np.zeros((gpts, gpts))
    u = positions / sampling
    i0 = np.floor(u).astype(int)
    fr = u - i0
    for dx in (0, 1):
        for dy in (0, 1):
            w = weights * (fr[:, 0] if dx else 1 - fr[:, 0]) * (fr[:, 1] if dy else 1 - fr[:, 1])
            np.add.at(grid, ((i0[:, 0] + dx) % gpts, (i0[:, 1] + dy) % gpts), w)
    return grid / sampling**2


@dataclass(frozen=True)
class SeriesConfig:
    """Settings of the HAADF series simulator.

    Attributes
    ----------
    frames, size : int
        Number of frames and pixels per side (128 x 128 at 150 fps in seed 004).
    pixel_size_a : float
        Scan step [Å].
    dose_e_per_a2 : float
        Incident electrons per Å^2 per frame (seed 004: 1e5-1e6 e/Å^2/s at 150 fps is
        670-6700 per frame).
    semiangle_mrad, probe_defocus_a, energy_ev : float
        Probe: 300 kV, 25 mrad aberration-corrected.
    detector_mrad : (float, float)
        HAADF annulus.
    carbon_thickness_a : float
        Amorphous carbon film thickness (density 2.0 g/cm^3).
    n_single : (int, int)
        Inclusive range of isolated Pt atoms.
    n_clusters : (int, int)
        Inclusive range of Pt clusters.
    cluster_atoms : (int, int)
        Inclusive range of the target atom count per cluster; the nearest closed Wulff
        shape is used, so real counts differ (recorded as ``cluster_sizes``).
    hop_probability : float
        Chance per frame that an isolated atom hops.
    hop_distance_a : float
        Standard deviation of a hop [Å].
    cluster_jitter_a, cluster_rotation_deg : float
        Per-frame rigid motion of clusters.
    detach_probability : float
        Chance per frame that a cluster atom leaves its cluster.
    drift_a_per_frame : float
        Speed of the slow linear drift of the whole field.
    scan_noise_rms : float
        abTEM scan-noise strength (FWHM of local magnification change, percent);
        0 disables it.
    oversample : int
        Rendering grid points per scan step.
    """

    frames: int = 16
    size: int = 128
    pixel_size_a: float = 0.35
    dose_e_per_a2: float = 2000.0
    semiangle_mrad: float = 25.0
    probe_defocus_a: float = 0.0
    energy_ev: float = 300e3
    detector_mrad: tuple = (70.0, 200.0)
    carbon_thickness_a: float = 20.0
    n_single: tuple = (5, 15)
    n_clusters: tuple = (1, 3)
    cluster_atoms: tuple = (5, 40)
    hop_probability: float = 0.3
    hop_distance_a: float = 2.0
    cluster_jitter_a: float = 0.3
    cluster_rotation_deg: float = 3.0
    detach_probability: float = 0.01
    drift_a_per_frame: float = 0.2
    scan_noise_rms: float = 1.0
    oversample: int = 2

    def as_dict(self) -> dict:
        """Return the configuration as a JSON-serialisable dict."""
        return asdict(self)


def _random_cluster(n: int, rng: np.random.Generator) -> np.ndarray:
    """Projected (x, y) of a compact fcc Pt cluster of ``n`` atoms in a random orientation."""
    from ase.cluster import wulff_construction

    cluster = wulff_construction("Pt", [(1, 1, 1), (1, 0, 0)], [1.0, 1.15], max(n, 4), "fcc", rounding="closest")
    pos = cluster.positions - cluster.positions.mean(axis=0)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    return (pos @ rot.T)[:, :2]


def haadf_series(
    rng: np.random.Generator, config: SeriesConfig = SeriesConfig(), *, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate a low-dose HAADF movie of Pt atoms and clusters on amorphous carbon.

    Incoherent imaging: frame(r) = dose * pixel area * sum_i sigma_i P(r - r_i), with
    the probe P from abTEM and sigma_i from :func:`haadf_cross_section`; then abTEM's
    scan noise (line jitter) and Poisson counts. Seed 004 ("Datasets", item 2) describes
    the real movies this stands in for: Pt on carbon, 128 x 128 at 150 fps, 300 kV.

    Returns
    -------
    clean : ndarray, float32, shape (frames, size, size)
        Expected counts per pixel (scan distortion included): the ground truth.
    noisy : ndarray, float32, same shape
        Poisson draw of ``clean``.
    record : dict
        Settings, cross-sections and per-frame Pt positions ``pt_xy_A`` (x, y in Å in
        the image frame, rows counted from the top as y decreasing) and drift.
    """
    c = config
    extent = c.size * c.pixel_size_a
    gpts = c.size * c.oversample
    sampling = c.pixel_size_a / c.oversample
    probe = probe_intensity(
        gpts, sampling, semiangle_mrad=c.semiangle_mrad, defocus_a=c.probe_defocus_a, energy_ev=c.energy_ev, device=device
    )
    probe_ft = np.fft.rfft2(probe)
    sigma_pt = haadf_cross_section("Pt", *c.detector_mrad, c.energy_ev)
    sigma_c = haadf_cross_section("C", *c.detector_mrad, c.energy_ev)
    # Amorphous carbon: 2.0 g/cm^3 = 0.1003 atoms/Å^3, uniform random in projection.
    n_carbon = int(round(0.1003 * extent**2 * c.carbon_thickness_a))
    carbon = rng.uniform(0, extent, size=(n_carbon, 2))
    singles = rng.uniform(0, extent, size=(int(rng.integers(c.n_single[0], c.n_single[1] + 1)), 2))
    clusters = []
    for _ in range(int(rng.integers(c.n_clusters[0], c.n_clusters[1] + 1))):
        shape = _random_cluster(int(rng.integers(c.cluster_atoms[0], c.cluster_atoms[1] + 1)), rng)
        clusters.append([rng.uniform(0.2 * extent, 0.8 * extent, size=2), shape])
    cluster_sizes = [len(cl[1]) for cl in clusters]  # at frame 0; atoms may detach later
    direction = rng.uniform(0, 2 * np.pi)
    velocity = c.drift_a_per_frame * np.array([np.cos(direction), np.sin(direction)])
    area = c.pixel_size_a**2
    clean = np.empty((c.frames, c.size, c.size), np.float32)
    pt_xy: list = []
    for t in range(c.frames):
        if t > 0:
            hop = rng.random(len(singles)) < c.hop_probability
            singles[hop] += rng.normal(0, c.hop_distance_a, size=(hop.sum(), 2))
            for cl in clusters:
                cl[0] = cl[0] + rng.normal(0, c.cluster_jitter_a, 2)
                a = np.radians(rng.normal(0, c.cluster_rotation_deg))
                cl[1] = cl[1] @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
                leave = rng.random(len(cl[1])) < c.detach_probability
                if leave.any() and (~leave).sum() >= 2:
                    singles = np.concatenate([singles, cl[0] + cl[1][leave]])
                    cl[1] = cl[1][~leave]
        shift = velocity * t
        pts = np.concatenate([singles] + [cl[0] + cl[1] for cl in clusters]) + shift
        pt_xy.append(np.mod(pts, extent).round(3).tolist())
        density = _splat(np.mod(pts, extent), np.full(len(pts), sigma_pt), gpts, sampling)
        density += _splat(np.mod(carbon + shift, extent), np.full(n_carbon, sigma_c), gpts, sampling)
        fraction = np.fft.irfft2(np.fft.rfft2(density) * probe_ft, s=(gpts, gpts)) * sampling**2
        frame_xy = fraction[:: c.oversample, :: c.oversample] * c.dose_e_per_a2 * area
        if c.scan_noise_rms > 0:
            frame_xy = _scan_noise(frame_xy, c, int(rng.integers(2**31)))
        clean[t] = np.clip(frame_xy.T[::-1], 0, None)
    noisy = rng.poisson(clean).astype(np.float32)
    record = {
        **c.as_dict(),
        "extent_A": extent,
        "sigma_pt_A2": sigma_pt,
        "sigma_c_A2": sigma_c,
        "n_carbon_atoms": n_carbon,
        "cluster_sizes": cluster_sizes,
        "drift_velocity_A_per_frame": velocity.tolist(),
        "pt_xy_A": pt_xy,
        "device": device,
    }
    return clean, noisy, record


def _scan_noise(frame_xy: np.ndarray, c: SeriesConfig, seed: int) -> np.ndarray:
    """Line-jitter distortion of one frame by abTEM's scan-noise transform."""
    import abtem

    dwell = 1.0 / (150.0 * c.size * c.size)  # 150 frames per second, as in seed 004
    image = abtem.Images(frame_xy.astype(np.float32), sampling=c.pixel_size_a)
    out = image.scan_noise(dwell_time=dwell, flyback_time=0.1 * dwell * c.size, rms_power=c.scan_noise_rms, seed=seed)
    return np.asarray(out.array).reshape(frame_xy.shape)
