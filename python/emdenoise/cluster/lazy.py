"""Build the lazy Dask graph that denoises an array chunk by chunk (behind :mod:`emdenoise.dask`).

Chunks are denoised by :func:`emdenoise.cluster.blocks.denoise_chunk` through
``dask.array.map_overlap`` with ``boundary="none"``: each chunk borrows
:func:`~emdenoise.cluster.geometry.overlap_depth` pixels from its neighbours and takes the
frame's reflection at its edges itself, as ``np.pad(mode="reflect")`` does in the engine
(Dask's own ``"reflect"`` repeats the edge pixel, NumPy's does not).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

from emdenoise._version import __version__
from emdenoise.cluster.blocks import ChunkModel, denoise_chunk
from emdenoise.cluster.geometry import overlap_depth
from emdenoise.engine.cards import ModelCard
from emdenoise.engine.engine import DEFAULT_BATCH, DEFAULT_TILE
from emdenoise.engine.normalization import fit_normalization
from emdenoise.engine.repository import ModelRepository
from emdenoise.engine.validation import MAX_FRAME_BYTES, check_dtype, check_job_options
from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.metadata import ImageMetadata


class ChunkingWarning(UserWarning):
    """Chunks were changed to fit the model (smaller than its overlap, or a whole-frame model)."""


@dataclass
class LazyResult:
    """A planned denoising: the lazy result and what the outputs' provenance records."""

    array: Any
    card: ModelCard
    provenance: dict[str, str] = field(default_factory=dict)
    counts: Any = None


def plan(array, model: str | None = None, *, gain: float | None = None, offset: float | None = None,
         server: str | None = None, device: str = "auto", models_dirs=None, threads: int | None = None,
         tile_size: int | None = None, batch_size: int = DEFAULT_BATCH, modality: str = "any",
         metadata: ImageMetadata | None = None, max_frame_bytes: int = MAX_FRAME_BYTES) -> LazyResult:
    """Plan :func:`emdenoise.dask.denoise` (see there); also return the card and provenance."""
    x = array if isinstance(array, da.Array) else da.asarray(array)
    _check_array(x)
    checked = check_job_options(gain=gain, offset=offset, tile_size=tile_size)
    repository = ModelRepository(models_dirs)
    card = repository.get(model) if model else repository.default_for(modality)
    if card.task != "denoise":
        raise InvalidInput(f"model {card.id} is a {card.task} model, not a denoiser; choose a denoise model.")
    counts = _calibrate(x, card, metadata, checked["gain"], checked["offset"])
    calibration = {"gain": counts.gain, "offset": counts.offset} if counts else {"gain": checked["gain"],
                                                                                 "offset": checked["offset"]}
    if server:
        from emdenoise.cluster.remote import remote_denoise

        result = remote_denoise(_whole_frames(x, card, max_frame_bytes, why="a server denoises whole frames"),
                                card.id, server, **calibration)
        device_used = f"server {server}"
    else:
        shift, scale = _normalisation(x, card, calibration)
        result = _local(x, card, shift, scale, device=device, threads=threads, tile_size=checked["tile_size"],
                        batch_size=batch_size, max_frame_bytes=max_frame_bytes)
        device_used = f"dask ({device})"
    return LazyResult(result, card, _provenance(card, counts, device_used), counts)


def _check_array(x) -> None:
    check_dtype(x.dtype)
    if x.ndim < 2:
        raise InvalidInput(f"an image needs at least 2 dimensions (frames on the last two), got shape {x.shape}.")
    if min(x.shape[-2:]) < 2:
        raise InvalidInput(f"frames of {x.shape[-2]}x{x.shape[-1]} pixels are too small; frames need at least 2x2 "
                           "pixels.")
    if 0 in x.shape:
        raise InvalidInput("the stack is empty; it holds no frames.")


def _calibrate(x, card: ModelCard, metadata, gain, offset):
    """Counts calibration from the first frame, as the file workflow does (None when not needed)."""
    from emdenoise.workflow import calibrate, needs_counts

    if not needs_counts(card.raw):
        return None
    first = np.asarray(x[(0,) * (x.ndim - 2)].compute(), dtype=np.float32)
    return calibrate(first, metadata or ImageMetadata(), card.raw, gain=gain, offset=offset,
                     warn=lambda message: warnings.warn(message, stacklevel=4))


def _normalisation(x, card: ModelCard, calibration: dict):
    """Per-frame shift and scale as Dask arrays of shape ``(..., 1, 1)`` chunked like ``x``'s frames.

    ``min-mean`` and ``range01`` need each whole frame's minimum and mean (or maximum):
    a cheap reduction per frame, computed here once, so that every chunk of a frame is
    normalised with that frame's numbers (the engine's rule, seed 002 sec. 2.2).
    """
    kind = card.normalization.get("kind", "none")
    lead = x.shape[:-2]
    if kind in ("min-mean", "range01"):
        frames = x.astype(np.float32)
        low = frames.min(axis=(-2, -1))
        high = frames.mean(axis=(-2, -1), dtype=np.float64) if kind == "min-mean" else frames.max(axis=(-2, -1))
        low, high = dask.compute(low, high)
        low = np.asarray(low, np.float64)
        spread = np.asarray(high, np.float64) - low
        shift, scale = low, np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    else:  # none, counts: one map for every frame (also checks the kind is known)
        mapping = fit_normalization(np.zeros((2, 2), np.float32), card.normalization, **calibration)
        shift, scale = np.full(lead, mapping.shift), np.full(lead, mapping.scale)
    chunks = x.chunks[:-2] + ((1,), (1,))
    return (da.from_array(np.reshape(shift, lead + (1, 1)), chunks=chunks),
            da.from_array(np.reshape(scale, lead + (1, 1)), chunks=chunks))


def _whole_frames(x, card: ModelCard, max_frame_bytes: int, *, why: str):
    """``x`` with each frame in one chunk, refused when one frame exceeds ``max_frame_bytes``."""
    height, width = x.shape[-2:]
    needed = height * width * 4
    if needed > max_frame_bytes:
        raise UserError(f"{card.id} needs whole {height}x{width} frames ({why}), {needed / 2**20:.0f} MiB each as "
                        f"32-bit, more than the {max_frame_bytes / 2**20:.0f} MiB budget; raise max_frame_bytes or "
                        "bin the frames.")
    if len(x.chunks[-2]) > 1 or len(x.chunks[-1]) > 1:
        warnings.warn(f"{card.id}: frames were split into chunks; rechunked to whole {height}x{width} frames "
                      f"({why}).", ChunkingWarning, stacklevel=4)
        x = x.rechunk(x.chunks[:-2] + ((height,), (width,)))
    return x


def _geometry(card: ModelCard, shape: tuple[int, int], tile_size: int | None) -> tuple[int, int, int, bool]:
    """``(halo, multiple_of, tile_size, whole_frames)`` as :meth:`Engine.tile_plan` chooses them."""
    if card.backend == "classical":
        return 0, 1, max(shape), True
    tile = card.tile
    size = int(tile_size or tile.get("size") or DEFAULT_TILE)
    multiple = int(tile.get("multiple_of", 1))
    if card.is_global:
        return int(tile.get("overlap", 0)), multiple, size, True
    return card.receptive_field // 2, multiple, size, False


def _local(x, card: ModelCard, shift, scale, *, device, threads, tile_size, batch_size, max_frame_bytes):
    frame_shape = tuple(int(n) for n in x.shape[-2:])
    halo, multiple, size, whole = _geometry(card, frame_shape, tile_size)
    if whole:
        x = _whole_frames(x, card, max_frame_bytes, why="its output depends on the whole frame ('global' card)")
        depth = 0
    else:
        depth = overlap_depth(halo, multiple)
        x = _at_least(x, depth, card)
    spatial = {x.ndim - 2: depth if len(x.chunks[-2]) > 1 else 0, x.ndim - 1: depth if len(x.chunks[-1]) > 1 else 0}
    chunk_model = ChunkModel(folder=str(card.folder), sha256=card.graph_sha256(), halo=halo, multiple_of=multiple,
                             tile_size=size, depth=depth, frame_shape=frame_shape, device=device, threads=threads,
                             batch_size=batch_size, whole_frames=whole)
    shift, scale = (s.rechunk(x.chunks[:-2] + ((1,), (1,))) for s in (shift, scale))
    return da.map_overlap(denoise_chunk, x, shift, scale, depth=[spatial, 0, 0], boundary="none", trim=False,
                          align_arrays=False, chunks=x.chunks, dtype=np.float32,
                          meta=np.empty((0,) * x.ndim, np.float32), model=chunk_model,
                          name=f"emdenoise-{card.id}")


def _at_least(x, depth: int, card: ModelCard):
    """Rechunk spatial axes whose chunks are smaller than the overlap ``depth`` (Dask needs depth <= chunk)."""
    chunks = list(x.chunks)
    changed = []
    for axis in (x.ndim - 2, x.ndim - 1):
        if len(chunks[axis]) > 1 and min(chunks[axis]) < depth:
            length = x.shape[axis]
            count = max(length // max(depth, max(chunks[axis])), 1)
            base, extra = divmod(length, count)
            chunks[axis] = tuple(base + (i < extra) for i in range(count))
            changed.append(f"{'rows' if axis == x.ndim - 2 else 'columns'} -> {chunks[axis][0]}")
    if changed:
        warnings.warn(f"{card.id} borrows {depth} pixels from each neighbouring chunk, more than the smallest chunk; "
                      f"rechunked ({', '.join(changed)}).", ChunkingWarning, stacklevel=4)
        x = x.rechunk(tuple(chunks))
    return x


def _provenance(card: ModelCard, counts, device: str) -> dict[str, str]:
    lines = {"model": card.id, "model_version": card.version,
             "graph_sha256": card.graph_sha256() or "none (classical filter)", "version": __version__,
             "device": device}
    if counts is None:
        lines.update(gain="not needed by this model", offset="not needed by this model")
    else:
        lines.update(gain=f"{counts.gain:.6g} ({counts.source})", offset=f"{counts.offset:.6g} ({counts.source})",
                     dose=f"{counts.dose:.4g} electrons/px per frame ({counts.method}, {counts.quality})")
    return lines
