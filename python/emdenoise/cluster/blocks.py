"""The function Dask runs on each overlapped chunk: normalise, tile, run, crop, map back.

Pure NumPy plus the engine's backends: no Dask import, so the arithmetic can be checked
against :class:`~emdenoise.engine.Engine` without a cluster. Each chunk gets the per-frame
affine map fitted to the *whole* frame (its shift and scale), so a chunk is normalised
exactly as the engine normalises the frame it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdenoise.cluster.geometry import AxisPlan, plan_axis
from emdenoise.cluster.sessions import backend_for, card_at
from emdenoise.engine.normalization import AffineMap
from emdenoise.errors import InvalidInput


@dataclass(frozen=True)
class ChunkModel:
    """What a chunk task needs to find and run the model (plain values: cheap to ship).

    Attributes
    ----------
    folder, sha256 : str
        Model folder and main graph digest (checked on the worker).
    halo, multiple_of, tile_size, depth : int
        Receptive-field radius, window multiple, largest tile core, Dask overlap depth.
    frame_shape : (int, int)
        Full frame height and width.
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    threads : int or None
        ONNX Runtime intra-op threads (None: one per task on a worker).
    batch_size : int
        Tiles per ONNX Runtime call.
    whole_frames : bool
        Chunks are whole frames of a 'global' (or classical) model: no filler rows.
    """

    folder: str
    sha256: str
    halo: int
    multiple_of: int
    tile_size: int
    depth: int
    frame_shape: tuple[int, int]
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 8
    whole_frames: bool = False


def denoise_chunk(block: np.ndarray, shift: np.ndarray, scale: np.ndarray, *, model: ChunkModel,
                  block_info=None) -> np.ndarray:
    """Denoise the core of one overlapped chunk (Dask ``map_blocks`` over ``overlap(boundary="none")``).

    Parameters
    ----------
    block : ndarray
        ``(..., rows, cols)``: the chunk plus up to ``model.depth`` neighbouring pixels on
        each side (fewer at the frame's edges).
    shift, scale : ndarray
        ``(..., 1, 1)``: each frame's normalisation, fitted to the whole frame.
    model : ChunkModel
    block_info : dict
        Supplied by Dask; ``block_info[None]["array-location"]`` is the output chunk.

    Returns
    -------
    ndarray
        float32, the output chunk (the overlap already cropped).
    """
    location = block_info[None]["array-location"]
    (y0, y1), (x0, x1) = location[-2], location[-1]
    height, width = model.frame_shape
    plans = []
    for (start, stop), length, size in (((y0, y1), height, block.shape[-2]), ((x0, x1), width, block.shape[-1])):
        block_start = max(start - model.depth, 0)
        plans.append(plan_axis(start, stop, length, halo=model.halo, multiple_of=model.multiple_of,
                               tile_size=model.tile_size, block_start=block_start, block_stop=block_start + size,
                               fill_past=not model.whole_frames))
    card = card_at(model.folder, model.sha256)
    backend = backend_for(card, device=model.device, threads=model.threads)
    lead = block.shape[:-2]
    frames = block.reshape((-1,) + block.shape[-2:])
    shifts = np.broadcast_to(shift, lead + (1, 1)).reshape(-1)
    scales = np.broadcast_to(scale, lead + (1, 1)).reshape(-1)
    out = np.empty((frames.shape[0], y1 - y0, x1 - x0), np.float32)
    first = [loc[0] for loc in location[:-2]]
    for index, frame in enumerate(frames):
        where = _frame_name(first, lead, index)
        mapping = AffineMap(float(shifts[index]), float(scales[index]))
        extended = _finite(frame, where)[np.ix_(plans[0].source, plans[1].source)]
        _run_tiles(extended, mapping, where, plans, backend, model.batch_size, out[index])
    return out.reshape(lead + out.shape[1:])


def _frame_name(first: list[int], lead: tuple[int, ...], index: int) -> str:
    if not lead:
        return "the frame"
    position = [int(a) + int(b) for a, b in zip(first, np.unravel_index(index, lead))]
    return f"frame {tuple(position) if len(position) > 1 else position[0]}"


def _finite(frame: np.ndarray, where: str) -> np.ndarray:
    frame = frame.astype(np.float32, copy=False)
    if not np.isfinite(frame).all():
        bad = int(frame.size - np.count_nonzero(np.isfinite(frame)))
        raise InvalidInput(f"{where} contains {bad} NaN or infinite pixels; replace them (e.g. ImageJ: Process > "
                           "Math > Remove NaNs) first.")
    return frame


def _run_tiles(extended: np.ndarray, mapping: AffineMap, where: str, plans: list[AxisPlan], backend,
               batch_size: int, out: np.ndarray) -> None:
    """Run every tile window of the extended input into ``out``, keeping each tile's core inside the chunk.

    Windows are normalised, and kept cores mapped back, one tile at a time (the same
    float64 arithmetic the engine applies to the whole frame, element by element), so a
    task holds float64 copies of one window rather than of the whole chunk.
    """
    rows, cols = plans
    tiles = [(ty, tx) for ty in rows.tile_starts for tx in cols.tile_starts]
    for begin in range(0, len(tiles), max(batch_size, 1)):
        chunk = tiles[begin : begin + batch_size]
        batch = np.empty((len(chunk), 1, rows.window, cols.window), np.float32)
        for slot, (ty, tx) in enumerate(chunk):
            r0, c0 = ty - rows.halo - rows.origin, tx - cols.halo - cols.origin
            batch[slot, 0] = mapping.forward(extended[r0 : r0 + rows.window, c0 : c0 + cols.window], where=where)
        for (ty, tx), result in zip(chunk, backend.run(batch)):
            (a, b), (c, d) = _kept(ty, rows), _kept(tx, cols)
            core = result[0, rows.halo + a - ty : rows.halo + b - ty, cols.halo + c - tx : cols.halo + d - tx]
            out[a - rows.start : b - rows.start, c - cols.start : d - cols.start] = mapping.inverse(core, where=where)


def _kept(tile_start: int, plan: AxisPlan) -> tuple[int, int]:
    """The part of a tile's core that lies in the output chunk (frame coordinates)."""
    return max(tile_start, plan.start), min(tile_start + plan.core, plan.stop)
