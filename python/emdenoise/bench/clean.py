"""Clean image sets for the benchmarks: the user's TIFF folder or seeded synthetic lattices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.bench.lattice import VACUUM_LEVEL, synthetic_set
from emdenoise.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class CleanImage:
    """A clean frame with its name and, when known, its vacuum intensity."""

    name: str
    image: np.ndarray
    vacuum_level: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanSet:
    """Clean frames plus a sentence saying where they came from (for result files)."""

    images: list[CleanImage]
    description: str
    synthetic: bool


def _frames_of(path: Path) -> list[np.ndarray]:
    import tifffile

    try:
        data = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for damaged files
        raise UserError(f"Cannot read {path} as TIFF ({error}); pass a folder of readable TIFF files.") from error
    data = np.squeeze(np.asarray(data))
    if data.ndim == 2:
        return [data.astype(np.float32)]
    if data.ndim == 3 and data.shape[-1] not in (3, 4):
        return [frame.astype(np.float32) for frame in data]
    raise UserError(
        f"{path} has shape {data.shape}; clean sets need greyscale frames or stacks (no RGB, no 4D data)."
    )


def load_clean_dir(folder: str | Path, *, limit: int | None = None) -> CleanSet:
    """Read every frame of every TIFF in ``folder`` (sorted by name), up to ``limit`` frames.

    A folder written by ``emdenoise simulate`` (it holds ``dataset.json``) is read with
    :func:`load_simulated` instead.

    Raises
    ------
    UserError
        When the folder is missing, holds no TIFF files, or a file cannot be read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"Clean-image folder {root} does not exist; pass --clean DIR with your high-dose TIFFs.")
    if (root / "dataset.json").is_file():
        return load_simulated(root, limit=limit)
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
    if not files:
        raise UserError(f"No .tif/.tiff files in {root}; put high-dose micrographs there as TIFF.")
    images: list[CleanImage] = []
    for path in files:
        for k, frame in enumerate(_frames_of(path)):
            if not np.isfinite(frame).all():
                raise UserError(f"{path} frame {k} has NaN or infinite pixels; clean sets need finite images.")
            images.append(CleanImage(f"{path.name}[{k}]", frame))
            if limit is not None and len(images) >= limit:
                return CleanSet(images, f"{len(images)} frames from {root}", synthetic=False)
    return CleanSet(images, f"{len(images)} frames from {root}", synthetic=False)


def load_simulated(folder: Path, *, limit: int | None = None) -> CleanSet:
    """Clean frames of a data set written by ``emdenoise simulate KIND --out DIR``.

    The clean images are expected counts; for HRTEM sets the vacuum level is the dose
    the simulator scaled to (``dose_counts_per_px``), so SBD's 0.45 counts/px convention
    carries over unchanged. Series are split into their frames.
    """
    from emdenoise.simulate import load_shards

    images: list[CleanImage] = []
    for k, (clean, _noisy, params) in enumerate(load_shards(folder)):
        vacuum = params.get("dose_counts_per_px")
        frames = clean if clean.ndim == 3 else clean[None]
        for t, frame in enumerate(frames):
            name = f"{folder.name}[{k}]" + (f"[{t}]" if clean.ndim == 3 else "")
            images.append(CleanImage(name, np.asarray(frame, dtype=np.float32),
                                     float(vacuum) if vacuum else None))
            if limit is not None and len(images) >= limit:
                return CleanSet(images, f"{len(images)} simulated frames from {folder}", synthetic=True)
    if not images:
        raise UserError(f"The simulated data set {folder} holds no finished images; generate some first.")
    return CleanSet(images, f"{len(images)} simulated frames from {folder}", synthetic=True)


def synthetic_clean_set(n: int, size: int, seed: int, **options: Any) -> CleanSet:
    """``n`` synthetic lattice images (see :mod:`emdenoise.bench.lattice`).

    ``options`` go to :func:`emdenoise.bench.lattice.synthetic_lattice`.
    """
    images = [
        CleanImage(f"lattice-{seed}-{i}", item.image, VACUUM_LEVEL, item.params)
        for i, item in enumerate(synthetic_set(n, size, seed, **options))
    ]
    extra = "".join(f", {k}={v}" for k, v in options.items())
    return CleanSet(
        images,
        f"{n} synthetic {size}x{size} lattices of Gaussian atom columns in vacuum (seed {seed}{extra}, "
        "emdenoise.bench.lattice)",
        synthetic=True,
    )


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size x size`` crop at a random position, intensities unchanged.

    Images no larger than ``size`` along an axis are kept whole along that axis.
    """
    h, w = image.shape
    ch, cw = min(size, h), min(size, w)
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return np.asarray(image[y : y + ch, x : x + cw], dtype=np.float32)
