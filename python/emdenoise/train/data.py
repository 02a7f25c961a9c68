"""Training pairs for the SBD recipes: clean images in counts, augmented patches, fresh shot noise.

Seed 003, appendix C.4: patches are cut from the training images with horizontal and
vertical flips, rotations by -45 to +45 degrees and resizing by 0.75-0.82; the noisy input
is a Poisson draw of the (augmented) clean patch, drawn anew at every step as in the
authors' training loop. Clean images come from

* a simulated data set written by ``emdenoise simulate hrtem`` (read with
  :func:`emdenoise.simulate.shards.load_shards`; clean images are already in counts with
  the vacuum at 0.45 counts/px), or
* the synthetic stand-in: Gaussian atom-column lattices of :mod:`emdenoise.bench.lattice`
  with the vacuum scaled to the dose, drawn on seed streams that the benchmark never uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from emdenoise.errors import UserError

#: Seed-stream tags (second SeedSequence entry) that keep training, validation and the
#: benchmark's clean sets apart; ``emdenoise.bench.lattice.synthetic_set`` uses 7919.
TRAIN_STREAM = 2_718_281
VALIDATION_STREAM = 3_141_592


@dataclass(frozen=True)
class Augment:
    """Patch augmentation of seed 003, appendix C.4.

    Attributes
    ----------
    flips : bool
        Random horizontal and vertical flips.
    rotation_deg : float
        Rotations drawn uniformly from [-rotation_deg, +rotation_deg].
    scale : (float, float)
        Resizing factor range (output pixels per source pixel; < 1 shrinks the image).
    """

    flips: bool = True
    rotation_deg: float = 45.0
    scale: tuple[float, float] = (0.75, 0.82)

    @classmethod
    def from_dict(cls, spec: dict[str, Any] | None) -> "Augment":
        spec = dict(spec or {})
        if "scale" in spec:
            spec["scale"] = tuple(spec["scale"])
        return cls(**spec)


def augmented_patch(image: np.ndarray, size: int, rng: np.random.Generator, augment: Augment) -> np.ndarray:
    """Cut one ``size x size`` patch from ``image`` under a random flip/rotation/resize.

    The patch is sampled with one affine map (bilinear interpolation, values kept: a
    resized image keeps its counts per pixel); where the rotated, resized window leaves
    the image it is mirrored.

    Parameters
    ----------
    image : ndarray, (H, W)
    size : int
    rng : numpy.random.Generator
    augment : Augment

    Returns
    -------
    ndarray of float32, (size, size)
    """
    scale = float(rng.uniform(*augment.scale))
    angle = np.deg2rad(rng.uniform(-augment.rotation_deg, augment.rotation_deg))
    cos, sin = np.cos(angle), np.sin(angle)
    # Output pixel offsets from the patch centre map to source offsets through M.
    matrix = np.array([[cos, -sin], [sin, cos]]) / scale
    if augment.flips:
        matrix = matrix @ np.diag([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])])
    half_extent = (size / 2.0) * (abs(cos) + abs(sin)) / scale
    centre = []
    for length in image.shape:
        low, high = half_extent, length - 1 - half_extent
        centre.append(float(rng.uniform(low, high)) if high > low else (length - 1) / 2.0)
    out_centre = np.array([(size - 1) / 2.0] * 2)
    offset = np.array(centre) - matrix @ out_centre
    patch = ndimage.affine_transform(
        np.asarray(image, np.float32), matrix, offset=offset, output_shape=(size, size), order=1, mode="mirror"
    )
    return np.maximum(patch, 0.0).astype(np.float32)


@dataclass
class CleanPool:
    """Clean training images in expected counts per pixel, and where they came from."""

    images: list[np.ndarray]
    description: str
    dose: float
    params: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def lattice_pool(n: int, *, size: int, seed: int, stream: int, dose: float, options: dict[str, Any]) -> CleanPool:
    """``n`` synthetic lattices (:func:`emdenoise.bench.lattice.synthetic_lattice`) in counts.

    Image ``i`` is drawn from ``default_rng([seed, stream, i])``; its vacuum (level 1.0)
    is scaled to ``dose`` counts/px (seed 003, sec. 4).
    """
    from emdenoise.bench.lattice import synthetic_lattice

    images, params = [], []
    for i in range(int(n)):
        item = synthetic_lattice(size, np.random.default_rng([int(seed), int(stream), i]), **options)
        images.append((item.image * (dose / item.vacuum_level)).astype(np.float32))
        params.append(item.params)
    extra = "".join(f", {k}={v}" for k, v in options.items())
    description = (
        f"{n} synthetic {size}x{size} Gaussian atom-column lattices (emdenoise.bench.lattice{extra}; "
        f"seed streams [{seed}, {stream}, i]), vacuum scaled to {dose} counts/px"
    )
    return CleanPool(images, description, dose, params)


def shard_pool(directory: str | Path, *, dose: float, limit: int | None = None, skip: int = 0) -> CleanPool:
    """Clean images of a simulated data set, rescaled from its dose to ``dose`` counts/px.

    Parameters
    ----------
    directory : path-like
        A folder written by ``emdenoise simulate hrtem --out DIR``.
    dose : float
        Vacuum counts/px wanted (the data set records its own as ``dose_counts_per_px``).
    limit, skip : int
        Take images ``skip .. skip + limit`` (validation uses a slice training does not).
    """
    from emdenoise.simulate.shards import load_shards

    directory = Path(directory)
    try:
        items = load_shards(directory)
        images, params = [], []
        for k, (clean, _noisy, record) in enumerate(items):
            if k < skip:
                continue
            if limit is not None and len(images) >= limit:
                break
            if clean.ndim != 2:
                raise UserError(f"{directory} holds {clean.ndim}-D items; train on an 'hrtem' or 'tem-corpus' data set.")
            source_dose = float(record.get("dose_counts_per_px") or dose)
            images.append((clean * (dose / source_dose)).astype(np.float32))
            params.append({k: record.get(k) for k in ("index", "family", "defect", "defocus_nm", "contrast")})
    except FileNotFoundError:
        raise UserError(f"{directory} is not a simulated data set (no dataset.json); run 'emdenoise simulate hrtem --out DIR' first.") from None
    if not images:
        raise UserError(f"{directory} has no complete shards in the requested range; generate more images.")
    description = f"{len(images)} simulated images from {directory} (items {skip}..{skip + len(images) - 1}), vacuum at {dose} counts/px"
    return CleanPool(images, description, dose, params)


def make_pool(data: dict[str, Any], *, role: str, seed: int, dose: float) -> CleanPool:
    """The training or validation pool a recipe's ``data`` section asks for.

    ``data`` is ``{"source": "lattice", "n_train", "n_val", "size", "options"}`` or
    ``{"source": "shards", "path", "n_val"}`` (the first ``n_val`` items validate).
    """
    n_val = int(data.get("n_val", 4))
    if data["source"] == "lattice":
        n = int(data["n_train"]) if role == "train" else n_val
        stream = TRAIN_STREAM if role == "train" else VALIDATION_STREAM
        return lattice_pool(n, size=int(data["size"]), seed=seed, stream=stream, dose=dose, options=dict(data.get("options") or {}))
    if data["source"] == "shards":
        if role == "train":
            return shard_pool(data["path"], dose=dose, skip=n_val, limit=data.get("n_train"))
        return shard_pool(data["path"], dose=dose, limit=n_val)
    raise UserError(f"unknown data source {data['source']!r}; use 'lattice' or 'shards'.")


def noisy_batch(
    pool: CleanPool, *, batch: int, patch: int, rng: np.random.Generator, augment: Augment
) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` augmented clean patches and their Poisson draws, shape (batch, 1, patch, patch)."""
    clean = np.stack([augmented_patch(pool.images[int(rng.integers(len(pool)))], patch, rng, augment) for _ in range(batch)])
    noisy = rng.poisson(clean).astype(np.float32)
    return noisy[:, None], clean[:, None]


def validation_pairs(pool: CleanPool, *, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One fixed Poisson draw per validation image, the same at every evaluation."""
    pairs = []
    for i, clean in enumerate(pool.images):
        rng = np.random.default_rng([int(seed), VALIDATION_STREAM, 1, i])
        pairs.append((rng.poisson(clean).astype(np.float32), clean))
    return pairs
