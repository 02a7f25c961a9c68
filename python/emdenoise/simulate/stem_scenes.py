"""Clean HAADF-STEM scenes for the sim-trained STEM denoiser (issue 17, item 2).

HAADF contrast is incoherent: the image is the probe convolved with a projected
"Z-contrast" density (seed 004, "Datasets"; Pennycook & Jesson 1991), so a scene is a
non-negative density map and no multislice is needed. The families cover what STEM users
record at every magnification, not one specimen:

``lattice``
    Crystals in zone axis: a 2-D Bravais lattice with a 1-3 site basis of different
    weights (Z^1.7), Gaussian columns, thickness modulation, vacancies, edges to vacuum or
    particles, on amorphous carbon.
``particles``
    Bright particles (projected spheres and ellipsoids, optionally with lattice fringes)
    on a grainy amorphous support.
``film``
    Granular films with cracks and dark channels (log-normal grain, level-set cracks).
``grains``
    Polycrystalline areas: Voronoi grains of different brightness and fine texture.
``blobs``
    Smooth random structure (power-law random fields, exponentiated).

Every family draws its scale (pixel size relative to the structure) at random, so the
same network sees atoms, particles and micrometre textures. Each call depends only on
the generator it is given. Scenes have mean 1 and are >= 0.

Which family and scale a held-out real frame shows is never used to choose these
settings: the real frames of ``../shared/data`` are test data only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Families and the probability of drawing each.
FAMILIES: dict[str, float] = {"lattice": 0.3, "particles": 0.2, "film": 0.2, "grains": 0.15, "blobs": 0.15}


def power_law_field(rng: np.random.Generator, shape: tuple[int, int], beta: float,
                    low_cut: float = 0.0) -> np.ndarray:
    """A Gaussian random field with power spectrum ``|k|^-beta``, zero mean, unit std.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
    beta : float
        Spectral exponent: 2 is rough, 4 is smooth.
    low_cut : float
        Frequencies below this (cycles/px) are suppressed, which sets the largest scale.
    """
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.sqrt(kx**2 + ky**2)
    k[0, 0] = 1.0
    amplitude = k ** (-beta / 2.0)
    if low_cut > 0:
        amplitude *= 1.0 - np.exp(-((k / low_cut) ** 2))
    amplitude[0, 0] = 0.0
    noise = rng.normal(size=(shape[0], shape[1] // 2 + 1)) + 1j * rng.normal(size=(shape[0], shape[1] // 2 + 1))
    field = np.fft.irfft2(noise * amplitude, s=shape)
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def _splat(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bilinear deposit of point weights on a grid (sub-pixel positions kept)."""
    out = np.zeros(shape, np.float64)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        np.add.at(out, (rr[ok], cc[ok]), (weights * w)[ok])
    return out


def amorphous_support(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Grainy amorphous carbon: a rough random field around a level of 1 (mean-free grain)."""
    grain = power_law_field(rng, shape, rng.uniform(1.2, 2.5))
    return np.clip(1.0 + rng.uniform(0.1, 0.5) * grain, 0.0, None)


def lattice_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A crystal in zone axis: Bravais lattice, 1-3 site basis, Gaussian columns."""
    a = rng.uniform(3.0, 14.0)
    b = a * rng.uniform(0.7, 1.4)
    gamma = np.radians(rng.choice([60.0, 90.0, 120.0, rng.uniform(60.0, 120.0)]))
    theta = rng.uniform(0, np.pi)
    v1 = a * np.array([np.cos(theta), np.sin(theta)])
    v2 = b * np.array([np.cos(theta + gamma), np.sin(theta + gamma)])
    n_sites = int(rng.integers(1, 4))
    basis = [np.zeros(2)] + [rng.uniform(0.2, 0.8, 2) for _ in range(n_sites - 1)]
    weights = rng.uniform(0.15, 1.0, n_sites) ** 1.0
    weights[0] = 1.0
    span = int(np.ceil(max(shape) * 1.5 / min(a, b))) + 2
    i, j = np.meshgrid(np.arange(-span, span + 1), np.arange(-span, span + 1), indexing="ij")
    centre = np.array(shape, float) / 2 + rng.uniform(-a, a, 2)
    rows, cols, w = [], [], []
    for site, weight in zip(basis, weights):
        pos = (i[..., None] + site[0]) * v1 + (j[..., None] + site[1]) * v2
        rows.append(pos[..., 0].ravel() + centre[0])
        cols.append(pos[..., 1].ravel() + centre[1])
        w.append(np.full(pos[..., 0].size, weight))
    rows, cols, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(w)
    keep = (rows > -4) & (rows < shape[0] + 4) & (cols > -4) & (cols < shape[1] + 4)
    rows, cols, w = rows[keep], cols[keep], w[keep]
    jitter = rng.uniform(0.0, 0.06) * min(a, b)
    rows = rows + rng.normal(0, jitter, rows.size)
    cols = cols + rng.normal(0, jitter, cols.size)
    w = w * (rng.random(w.size) > rng.uniform(0.0, 0.08))  # vacancies
    columns = _splat(shape, rows, cols, w)
    width = rng.uniform(0.12, 0.3) * min(a, b)
    crystal = ndimage.gaussian_filter(columns, width, mode="constant") * (2 * np.pi * width**2)
    thickness = np.clip(1.0 + rng.uniform(0.0, 0.5) * power_law_field(rng, shape, 4.0), 0.2, None)
    crystal *= thickness
    mask = _region_mask(rng, shape)
    support = amorphous_support(rng, shape) * rng.uniform(0.02, 0.4)
    return (crystal * mask + support).astype(np.float32)


def _region_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Where the crystal is: everywhere, beyond an edge, or inside a particle (soft edge)."""
    kind = rng.choice(["full", "edge", "particle"], p=[0.4, 0.3, 0.3])
    r, c = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    if kind == "full":
        return np.ones(shape, np.float32)
    if kind == "edge":
        angle = rng.uniform(0, 2 * np.pi)
        d = (r - shape[0] / 2) * np.cos(angle) + (c - shape[1] / 2) * np.sin(angle) - rng.uniform(-0.3, 0.3) * shape[0]
        d = d + 3.0 * power_law_field(rng, shape, 3.0)
        return (1.0 / (1.0 + np.exp(-d / 1.5))).astype(np.float32)
    radius = rng.uniform(0.15, 0.6) * min(shape)
    d = np.hypot(r - rng.uniform(0.2, 0.8) * shape[0], c - rng.uniform(0.2, 0.8) * shape[1])
    return np.sqrt(np.clip(1.0 - (d / radius) ** 2, 0.0, None)).astype(np.float32)


def particles_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Particles (projected ellipsoids, some with fringes) on a grainy support."""
    scene = amorphous_support(rng, shape) * rng.uniform(0.05, 0.6)
    r, c = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    mean_radius = np.exp(rng.uniform(np.log(1.5), np.log(0.25 * min(shape))))
    count = int(np.clip(rng.poisson(0.15 * shape[0] * shape[1] / (np.pi * mean_radius**2) * rng.uniform(0.1, 1)), 1, 400))
    for _ in range(count):
        radius = mean_radius * np.exp(rng.normal(0, 0.35))
        cy, cx = rng.uniform(-radius, shape[0] + radius), rng.uniform(-radius, shape[1] + radius)
        half = int(np.ceil(radius * 1.6)) + 2
        r0, r1 = max(int(cy) - half, 0), min(int(cy) + half, shape[0])
        c0, c1 = max(int(cx) - half, 0), min(int(cx) + half, shape[1])
        if r0 >= r1 or c0 >= c1:
            continue
        rr, cc = r[r0:r1, c0:c1] - cy, c[r0:r1, c0:c1] - cx
        angle = rng.uniform(0, np.pi)
        elong = rng.uniform(1.0, 1.6)
        u = rr * np.cos(angle) + cc * np.sin(angle)
        v = (-rr * np.sin(angle) + cc * np.cos(angle)) / elong
        body = np.sqrt(np.clip(1.0 - (u**2 + v**2) / radius**2, 0.0, None))
        if radius > 6 and rng.random() < 0.5:
            period = rng.uniform(3.0, 8.0)
            phase = rng.uniform(0, 2 * np.pi)
            fringe_angle = rng.uniform(0, np.pi)
            body = body * (1.0 + 0.4 * np.cos(2 * np.pi * (rr * np.cos(fringe_angle) + cc * np.sin(fringe_angle)) / period + phase))
        scene[r0:r1, c0:c1] += rng.uniform(0.5, 5.0) * body
    return scene.astype(np.float32)


def film_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A granular film with thin cracks and wide dark channels."""
    grain_scale = rng.uniform(0.1, 0.5)
    scene = np.exp(grain_scale * power_law_field(rng, shape, rng.uniform(1.5, 3.0)))
    scene *= np.clip(1.0 + rng.uniform(0.0, 0.4) * power_law_field(rng, shape, 4.0), 0.1, None)
    crack_field = power_law_field(rng, shape, rng.uniform(2.5, 3.5), low_cut=rng.uniform(0.005, 0.03))
    crack_width = rng.uniform(0.03, 0.15)
    cracks = np.exp(-((crack_field / crack_width) ** 2))
    scene *= 1.0 - rng.uniform(0.5, 1.0) * cracks
    if rng.random() < 0.5:
        channel = power_law_field(rng, shape, 4.0)
        level = rng.uniform(-0.3, 0.3)
        width = rng.uniform(0.05, 0.3)
        scene *= 1.0 - rng.uniform(0.4, 0.9) * np.exp(-(((channel - level) / width) ** 2))
    return np.clip(scene, 0.0, None).astype(np.float32)


def grains_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Voronoi grains of random brightness, with boundaries and fine texture."""
    size = np.exp(rng.uniform(np.log(6.0), np.log(0.5 * min(shape))))
    count = int(np.clip(shape[0] * shape[1] / size**2, 2, 2000))
    seeds = rng.uniform(0, 1, (count, 2)) * np.array(shape)
    r, c = np.mgrid[: shape[0], : shape[1]]
    from scipy.spatial import cKDTree

    distance, label = cKDTree(seeds).query(np.stack([r.ravel(), c.ravel()], 1), k=2)
    label = label[:, 0].reshape(shape)
    boundary = (distance[:, 1] - distance[:, 0]).reshape(shape)
    brightness = rng.uniform(0.3, 1.7, count)
    scene = brightness[label]
    scene = scene * (1.0 - rng.uniform(-0.5, 0.8) * np.exp(-boundary / rng.uniform(0.5, 2.0)))
    scene *= np.clip(1.0 + rng.uniform(0.0, 0.3) * power_law_field(rng, shape, rng.uniform(1.5, 3.0)), 0.05, None)
    return np.clip(scene, 0.0, None).astype(np.float32)


def blobs_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth random structure: an exponentiated power-law field."""
    return np.exp(rng.uniform(0.3, 1.2) * power_law_field(rng, shape, rng.uniform(2.5, 4.5))).astype(np.float32)


_MAKERS = {"lattice": lattice_scene, "particles": particles_scene, "film": film_scene,
           "grains": grains_scene, "blobs": blobs_scene}


def stem_scene(rng: np.random.Generator, shape: tuple[int, int], family: str | None = None) -> tuple[np.ndarray, dict]:
    """Draw one clean HAADF scene (mean 1, >= 0).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
    family : str, optional
        One of :data:`FAMILIES`; drawn by its probability when None.

    Returns
    -------
    scene : ndarray, float32
    params : dict
        ``family`` and ``background`` (the share of the mean added as a flat level).
    """
    if family is None:
        names = list(FAMILIES)
        family = str(rng.choice(names, p=np.array([FAMILIES[n] for n in names])))
    scene = _MAKERS[family](rng, shape).astype(np.float64)
    if rng.random() < 0.3:  # a slow intensity gradient (thickness wedge, detector tilt)
        r, c = np.mgrid[: shape[0], : shape[1]] / max(shape)
        scene *= np.clip(1.0 + rng.uniform(-0.5, 0.5) * (r - 0.5) + rng.uniform(-0.5, 0.5) * (c - 0.5), 0.2, None)
    mean = scene.mean()
    scene = scene / mean if mean > 0 else np.ones(shape)
    background = float(rng.uniform(0.0, 0.1)) if rng.random() < 0.5 else 0.0
    scene = (scene + background) / (1.0 + background)
    return scene.astype(np.float32), {"family": family, "background": background}
