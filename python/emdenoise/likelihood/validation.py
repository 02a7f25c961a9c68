"""Reproduce seed 003 Fig. 4: a spurious column planted in the denoised image is contradicted.

The denoised estimate is the clean image (an ideal denoiser) with one extra column copied
into the vacuum next to the structure, where the counts hold nothing but vacuum. The
likelihood map should give the planted column a negative LLR and the true columns a
positive one. How often a true column comes out positive is fixed by Poisson statistics:
:func:`support_probability` gives it exactly, so measured rates can be checked against it.

Run ``python -m emdenoise.likelihood.validation --help`` for the rates over seeds and
doses (simulated HRTEM from :mod:`emdenoise.simulate`, or a numpy lattice).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from emdenoise.likelihood.compute import DECISIVE_POWER, LikelihoodSettings, detect_regions, likelihood_map
from emdenoise.likelihood.poisson import decision_power, support_probability  # noqa: F401 (tests import it here)

SBD_DOSE = 0.45  # counts/px in the vacuum (seed 003, sec. 4)


def gaussian_lattice(
    shape: tuple[int, int] = (192, 192),
    *,
    spacing: float = 16.0,
    sigma: float = 3.5,
    peak: float = 0.45,
    vacuum: float = SBD_DOSE,
    rows: int = 5,
    cols: int = 7,
) -> np.ndarray:
    """Clean image in counts: a block of Gaussian columns on the vacuum level, vacuum above it.

    Parameters
    ----------
    shape : (int, int)
    spacing : float
        Column spacing [pixels] of a hexagonal lattice.
    sigma : float
        Column width [pixels].
    peak : float
        Column amplitude above the vacuum level [counts/px].
    vacuum : float
        Vacuum level [counts/px] (0.45 in seed 003).
    rows, cols : int
        Size of the block, centred horizontally and resting on the bottom edge.

    Returns
    -------
    ndarray, float64
    """
    height, width = shape
    image = np.full(shape, float(vacuum))
    yy, xx = np.mgrid[:height, :width]
    x0 = (width - (cols - 1) * spacing - spacing / 2) / 2
    for i in range(rows):
        y = height - 1 - spacing / 2 - i * spacing * math.sqrt(3) / 2
        for j in range(cols):
            x = x0 + j * spacing + (spacing / 2 if i % 2 else 0.0)
            image += peak * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return image


@dataclass(frozen=True)
class PlantedColumn:
    """Where the spurious column went and which true region it copies."""

    row: int
    col: int
    source_id: int


def plant_spurious_column(
    estimate: np.ndarray, rng: np.random.Generator, settings: LikelihoodSettings | None = None
) -> tuple[np.ndarray, PlantedColumn]:
    """Copy a typical column of ``estimate`` into the vacuum beside the structure (seed 003 Fig. 4).

    The copied column is the detected one of median mean intensity; its deviation from the
    vacuum level, within 1.5 radii of its centre, is added at a vacuum pixel one to one and
    a half column spacings from the nearest column, where a next column of the structure
    could plausibly sit.

    Raises
    ------
    ValueError
        No column to copy, or no room in the vacuum.
    """
    found = detect_regions(estimate, settings)
    sizes = np.bincount(found.labels.ravel(), minlength=len(found.blobs) + 1)[1:]
    sums = np.bincount(found.labels.ravel(), weights=estimate.ravel(), minlength=len(found.blobs) + 1)[1:]
    usable = np.flatnonzero(sizes > 0)
    if usable.size == 0:
        raise ValueError("no columns to copy")
    order = usable[np.argsort(sums[usable] / sizes[usable])]
    source_index = int(order[len(order) // 2])
    source = found.blobs[source_index]
    centres = np.array([[b.row, b.col] for b in found.blobs])
    if len(centres) > 1:
        gaps = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(gaps, np.inf)
        spacing = float(np.median(gaps.min(axis=1)))
    else:
        spacing = 4.0 * source.radius
    reach = int(math.ceil(1.5 * source.radius))
    r0, c0 = int(round(source.row)), int(round(source.col))
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    window = estimate[max(r0 - reach, 0) : r0 + reach + 1, max(c0 - reach, 0) : c0 + reach + 1]
    if window.shape != yy.shape:
        raise ValueError("the copied column touches the frame edge")
    patch = np.where(np.hypot(yy, xx) <= 1.5 * source.radius, window - found.reference, 0.0)
    marks = np.ones(estimate.shape, bool)
    rows = np.clip(np.round(centres[:, 0]).astype(int), 0, estimate.shape[0] - 1)
    cols = np.clip(np.round(centres[:, 1]).astype(int), 0, estimate.shape[1] - 1)
    marks[rows, cols] = False
    to_column = ndimage.distance_transform_edt(marks)
    clear = ndimage.binary_erosion(found.vacuum, np.ones((2 * reach + 1, 2 * reach + 1), bool), border_value=0)
    for widen in (1.5, 2.0, 3.0, 5.0):
        candidates = np.argwhere(clear & (to_column >= spacing) & (to_column <= widen * spacing))
        if len(candidates):
            break
    else:
        raise ValueError("no vacuum beside the structure to plant a column in")
    row, col = candidates[rng.integers(len(candidates))]
    planted = estimate.copy()
    planted[row - reach : row + reach + 1, col - reach : col + reach + 1] += patch
    return planted, PlantedColumn(int(row), int(col), source_index + 1)


@dataclass
class Trial:
    """One noisy draw of one image at one dose.

    The ``*_expected`` fields are the exact Poisson probabilities of the same outcomes
    (:func:`support_probability`) for the regions this draw tested, so that measured
    rates can be checked against what any implementation of the test could reach.
    """

    dose: float
    spurious_detected: bool
    spurious_llr: float
    spurious_expected: float  # probability that the planted column comes out not supported
    true_regions: int
    true_supported: int
    true_expected: float  # sum of support_probability over the true regions
    particle_regions: int = 0  # true regions centred on a known column of the particle
    particle_supported: int = 0
    particle_expected: float = 0.0
    decisive_regions: int = 0  # true regions with power >= DECISIVE_POWER
    decisive_supported: int = 0
    spurious_flagged: bool = False  # the test did not support it (contradicted or undecided)


def fig4_trial(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    dose: float = SBD_DOSE,
    settings: LikelihoodSettings | None = None,
    particle_columns: np.ndarray | None = None,
) -> Trial:
    """Plant a spurious column in ``clean`` (scaled to ``dose``), draw counts, test every region.

    Parameters
    ----------
    clean : ndarray
        Clean image in counts with its vacuum at :data:`SBD_DOSE`.
    rng : numpy.random.Generator
        Picks the planting site and draws the Poisson counts.
    dose : float
        Vacuum counts/px of this trial; ``clean`` is scaled by ``dose / 0.45``.
    settings : LikelihoodSettings, optional
    particle_columns : ndarray (n, 2), optional
        Known (row, col) centres of the particle's columns (``pt_columns_rc`` of a
        simulated HRTEM record); true regions whose disc holds one are also counted
        as the particle's.

    Notes
    -----
    Seed 003, sec. 3 (likelihood maps) and Fig. 4 (a spurious atom beside the particle).
    """
    settings = settings or LikelihoodSettings()
    clean = clean * (dose / SBD_DOSE)
    estimate, planted = plant_spurious_column(clean, rng, settings)
    noisy = rng.poisson(clean).astype(np.uint16)
    result = likelihood_map(noisy, estimate, settings=settings)
    spurious = [r for r in result.regions if math.hypot(r.row - planted.row, r.col - planted.col) <= max(r.radius, 2.0)]
    true = [r for r in result.regions if r not in spurious]

    # mean clean rate of every region at once (labels are 1..K; vacuum and background are not)
    inside = result.labels > 0
    sums = np.bincount(result.labels[inside], weights=clean[inside], minlength=len(result.regions) + 1)
    expected = {  # P(the test says supported) at the region's true (clean) rate
        r.id: decision_power(r.pixels, r.intensity, result.vacuum_level, r.significance, true_rate=sums[r.id] / r.pixels)
        for r in result.regions
    }

    centres = np.empty((0, 2)) if particle_columns is None else np.asarray(particle_columns, float).reshape(-1, 2)
    particle = [
        r for r in true if len(centres) and np.hypot(centres[:, 0] - r.row, centres[:, 1] - r.col).min() <= r.radius
    ]
    return Trial(
        dose=dose,
        spurious_detected=bool(spurious),
        spurious_llr=float(spurious[0].llr) if spurious else float("nan"),
        spurious_expected=1.0 - expected[spurious[0].id] if spurious else 0.0,
        spurious_flagged=bool(spurious) and not spurious[0].supported,
        true_regions=len(true),
        true_supported=sum(r.supported for r in true),
        true_expected=sum(expected[r.id] for r in true),
        particle_regions=len(particle),
        particle_supported=sum(r.supported for r in particle),
        particle_expected=sum(expected[r.id] for r in particle),
        decisive_regions=sum(r.power >= DECISIVE_POWER for r in true),
        decisive_supported=sum(r.supported for r in true if r.power >= DECISIVE_POWER),
    )


def summarise(trials: list[Trial]) -> dict:
    """Rates over trials: spurious not supported by the test (undetected counts as a miss), true
    supported (all true regions, and those on the particle's columns), each next to its
    exact Poisson expectation."""
    detected = [t for t in trials if t.spurious_detected]
    true_total = sum(t.true_regions for t in trials)
    particle_total = sum(t.particle_regions for t in trials)
    return {
        "trials": len(trials),
        "spurious_detected": len(detected) / len(trials),
        "spurious_contradicted": sum(t.spurious_flagged for t in detected) / len(trials),
        "spurious_contradicted_expected": sum(t.spurious_expected for t in detected) / len(trials),
        "spurious_llr_median": float(np.median([t.spurious_llr for t in detected])) if detected else float("nan"),
        "true_regions": true_total,
        "true_supported": sum(t.true_supported for t in trials) / max(true_total, 1),
        "true_supported_expected": sum(t.true_expected for t in trials) / max(true_total, 1),
        "particle_regions": particle_total,
        "particle_supported": sum(t.particle_supported for t in trials) / max(particle_total, 1),
        "particle_supported_expected": sum(t.particle_expected for t in trials) / max(particle_total, 1),
        "decisive_fraction": sum(t.decisive_regions for t in trials) / max(true_total, 1),
        "decisive_supported": sum(t.decisive_supported for t in trials) / max(sum(t.decisive_regions for t in trials), 1),
    }


def fig4_figure(clean: np.ndarray, rng: np.random.Generator, path, *, dose: float = SBD_DOSE, zoom: int = 96) -> dict:
    """Render seed 003 Fig. 4 for one clean image: (a) counts, (b) estimate with a planted
    column, (c) likelihood map on the estimate, (d) zoom on the planted column.

    Returns the planted column's region (row, col, llr) and the map's message.
    """
    from PIL import Image, ImageDraw

    from emdenoise.likelihood.overlay import overlay_rgba, preview_rgb

    clean = clean * (dose / SBD_DOSE)
    estimate, planted = plant_spurious_column(clean, rng)
    noisy = rng.poisson(clean).astype(np.uint16)
    result = likelihood_map(noisy, estimate)
    overlay = overlay_rgba(result.llr_map)
    grey = lambda image: preview_rgb(image, np.zeros(image.shape + (4,), np.uint8))  # noqa: E731
    panels = [grey(ndimage.gaussian_filter(noisy.astype(float), 1.0)), grey(estimate), preview_rgb(estimate, overlay)]
    half = zoom // 2
    r0 = int(np.clip(planted.row - half, 0, clean.shape[0] - zoom))
    c0 = int(np.clip(planted.col - half, 0, clean.shape[1] - zoom))
    crop = panels[2][r0 : r0 + zoom, c0 : c0 + zoom]
    size = panels[0].shape[0]
    panels.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.NEAREST)))
    labels = ["(a) counts, 0.45/px vacuum (1 px blur)", "(b) estimate + planted column", "(c) likelihood map", "(d) zoom on (c)"]
    sheet = Image.new("RGB", (4 * size + 30, size + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (panel, label) in enumerate(zip(panels, labels)):
        x = index * (size + 10)
        sheet.paste(Image.fromarray(panel), (x, 24))
        draw.text((x + 4, 5), label, fill="black")
    sheet.save(path)
    spurious = [r for r in result.regions if math.hypot(r.row - planted.row, r.col - planted.col) <= max(r.radius, 2.0)]
    return {
        "planted": (planted.row, planted.col),
        "planted_llr": spurious[0].llr if spurious else float("nan"),
        "message": result.message,
    }


def _hrtem_images(count: int, seed: int):
    from emdenoise.simulate.generate import make_item

    from emdenoise.simulate.hrtem import HrtemConfig

    config = HrtemConfig()
    for index in range(count):
        clean, _, record = make_item("hrtem", config, seed, index)
        yield (f"hrtem seed {seed} #{index} {record['family']} {record['contrast']}", clean.astype(np.float64),
               np.asarray(record["pt_columns_rc"], float))


def _lattice_images(count: int, seed: int):
    for index in range(count):
        yield f"lattice #{index}", gaussian_lattice(), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emdenoise.likelihood.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("hrtem", "lattice"), default="hrtem", help="clean images: abTEM HRTEM or numpy lattice")
    parser.add_argument("--images", type=int, default=4, help="clean images (each one simulation)")
    parser.add_argument("--noise-seeds", type=int, default=5, help="noisy draws per image and dose")
    parser.add_argument("--doses", type=float, nargs="+", default=[0.45, 0.9, 1.8, 3.6], help="vacuum counts/px")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--figure", metavar="PNG", help="also draw Fig. 4 panels for the first image")
    args = parser.parse_args(argv)
    images = _hrtem_images if args.source == "hrtem" else _lattice_images
    trials: dict[float, list[Trial]] = {dose: [] for dose in args.doses}
    start = time.perf_counter()
    for image_index, (name, clean, columns) in enumerate(images(args.images, args.seed)):
        if args.figure and image_index == 0:
            drawn = fig4_figure(clean, np.random.default_rng([args.seed, 0]), args.figure)
            print(f"{args.figure}: planted column at {drawn['planted']} LLR {drawn['planted_llr']:.2f}; {drawn['message']}",
                  file=sys.stderr)
        for dose in args.doses:
            for draw in range(args.noise_seeds):
                rng = np.random.default_rng([args.seed, image_index, draw, int(round(dose * 1000))])
                try:
                    trials[dose].append(fig4_trial(clean, rng, dose=dose, particle_columns=columns))
                except ValueError as error:
                    print(f"{name}: skipped ({error})", file=sys.stderr)
                    break
        print(f"{name}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print("dose   trials  spurious: detected contradicted (expected) median-LLR   "
          "true: regions supported (expected)   particle: regions supported (expected)   "
          "decisive: share supported")
    for dose, rows in trials.items():
        if not rows:
            continue
        s = summarise(rows)
        print(
            f"{dose:<6g} {s['trials']:>6d}  {s['spurious_detected']:>18.3f} {s['spurious_contradicted']:>12.3f} "
            f"({s['spurious_contradicted_expected']:.3f}) {s['spurious_llr_median']:>10.2f}   "
            f"{s['true_regions']:>12d} {s['true_supported']:>9.3f} ({s['true_supported_expected']:.3f})   "
            f"{s['particle_regions']:>16d} {s['particle_supported']:>9.3f} ({s['particle_supported_expected']:.3f})   "
            f"{s['decisive_fraction']:>14.3f} {s['decisive_supported']:>9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
