"""Where each chunk of a frame reads its input from: halo depth, reflection, pooling phase.

A chunk of the output, rows ``[start, stop)`` of a frame ``length`` rows long, is computed
exactly as the embedded engine computes those rows (:mod:`emdenoise.engine.tiling`):

- every output pixel sees ``halo`` input pixels on each side (the receptive-field radius),
  taken across the frame's edge from its reflection (``np.pad(mode="reflect")``);
- every model input window starts ``halo`` pixels before a multiple of the card's
  ``tile.multiple_of`` ``m``, so a network that pools sees the pooling grid it sees in
  the engine (whose tile origins are multiples of a core that is itself a multiple of
  ``m``), whatever the chunk boundaries.

The second rule costs up to ``m - 1`` extra rows on the low side, so the Dask overlap depth
is ``halo + m - 1`` (:func:`overlap_depth`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // int(multiple)) * int(multiple)


def overlap_depth(halo: int, multiple_of: int) -> int:
    """Rows (and columns) each chunk borrows from its neighbours: ``halo + multiple_of - 1``."""
    return int(halo) + max(int(multiple_of), 1) - 1


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map frame coordinates (any integers) into ``[0, length)`` as ``np.pad(mode="reflect")`` does.

    Reflection without repeating the edge pixel, repeated as often as needed (period
    ``2 * (length - 1)``); a frame one pixel long repeats that pixel (the engine's ``edge``).

    Examples
    --------
    >>> reflect_index(np.arange(-3, 7), 4).tolist()
    [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    """
    index = np.asarray(index, dtype=np.int64)
    if length <= 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    folded = np.mod(index, period)
    return np.where(folded < length, folded, period - folded)


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis of one output chunk, and where their input comes from.

    Attributes
    ----------
    start, stop : int
        The output chunk, in frame coordinates.
    origin : int
        Frame coordinate of the first row of the extended input (``source[0]``).
    source : ndarray
        For each row of the extended input, the row of the overlapped Dask block it is
        copied from (reflection at the frame's edges already applied).
    tile_starts : tuple of int
        Frame coordinates of the tile cores (each ``core`` long; the last may reach past
        ``stop``, its extra rows are computed from filler and dropped).
    core, window, halo : int
        Tile core length, model input length (a multiple of ``multiple_of``) and halo.
    """

    start: int
    stop: int
    origin: int
    source: np.ndarray
    tile_starts: tuple[int, ...]
    core: int
    window: int
    halo: int


def plan_axis(start: int, stop: int, length: int, *, halo: int, multiple_of: int, tile_size: int,
              block_start: int, block_stop: int, fill_past: bool = True) -> AxisPlan:
    """Plan the tiles of output rows ``[start, stop)`` from a Dask block ``[block_start, block_stop)``.

    Parameters
    ----------
    start, stop : int
        Output chunk rows (frame coordinates).
    length : int
        Frame length along this axis.
    halo : int
        Receptive-field radius.
    multiple_of : int
        Model windows are multiples of this and start ``halo`` before a multiple of it.
    tile_size : int
        Largest tile core.
    block_start, block_stop : int
        Rows of the frame the overlapped block holds (Dask ``boundary="none"``: clipped
        at the frame's edges).
    fill_past : bool
        Rows more than ``halo`` past ``stop`` reach no kept output pixel of a model with a
        finite receptive field: fill them with the last row needed (the block may not hold
        their reflection). False for whole-frame ('global') models, whose every output
        pixel depends on every input row: those rows are the frame's reflection, as in the
        engine.

    Returns
    -------
    AxisPlan

    Raises
    ------
    ValueError
        The block does not hold every row the chunk needs (the overlap depth was too small).
    """
    multiple = max(int(multiple_of), 1)
    aligned = start - start % multiple
    core = min(max(int(tile_size) // multiple, 1) * multiple, round_up(stop - aligned, multiple))
    window = round_up(core + 2 * halo, multiple)
    tile_starts = tuple(range(aligned, stop, core))
    origin = aligned - halo
    end = tile_starts[-1] - halo + window
    rows = np.arange(origin, end)
    if fill_past:
        rows = np.minimum(rows, stop + halo - 1)
    source = reflect_index(rows, length) - block_start
    if source.min() < 0 or source.max() >= block_stop - block_start:
        raise ValueError(f"rows {start}:{stop} need frame rows the overlapped block {block_start}:{block_stop} "
                         "lacks; the overlap depth is too small.")
    return AxisPlan(start, stop, origin, source, tile_starts, core, window, halo)
