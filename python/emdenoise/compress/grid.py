"""Cut a frame of any size into the autoencoder's fixed tiles and put it back.

Seed 002, sec. 2: the autoencoders see 160x160 crops, each normalised on its own (minimum
subtracted, divided by the mean of the result). A frame is reflect-padded up to a whole
number of tiles, every tile keeps its own normalisation (``shift``, ``scale``) so that
decoding can invert it, and the padding is cropped off after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdenoise.errors import InvalidInput


@dataclass(frozen=True)
class TileGrid:
    """``rows`` x ``cols`` tiles of side ``tile`` covering a frame of ``shape``."""

    shape: tuple[int, int]
    tile: int

    @property
    def rows(self) -> int:
        return -(-self.shape[0] // self.tile)

    @property
    def cols(self) -> int:
        return -(-self.shape[1] // self.tile)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def padded_shape(self) -> tuple[int, int]:
        return self.rows * self.tile, self.cols * self.tile


def plan_grid(shape: tuple[int, int], tile: int) -> TileGrid:
    """The tile grid of a frame of ``shape`` (height, width) for tiles of side ``tile``."""
    if len(shape) != 2 or min(shape) < 2:
        raise InvalidInput(f"a frame of shape {tuple(shape)} cannot be compressed; frames must be 2-D and at least 2x2.")
    return TileGrid((int(shape[0]), int(shape[1])), int(tile))


def split_tiles(frame: np.ndarray, grid: TileGrid, *, margin: int = 0) -> np.ndarray:
    """Reflect-pad ``frame`` to the grid and cut its tiles (row-major).

    Parameters
    ----------
    frame : ndarray
        2-D float32 frame of ``grid.shape``.
    grid : TileGrid
    margin : int
        Pixels of the neighbouring tiles (the frame's reflection at its borders) added on
        every side of each tile.

    Returns
    -------
    ndarray
        ``(count, tile + 2 margin, tile + 2 margin)`` float32.
    """
    height, width = grid.padded_shape
    m = int(margin)
    padded = _pad(frame, [(m, height - frame.shape[0] + m), (m, width - frame.shape[1] + m)])
    t, size = grid.tile, grid.tile + 2 * m
    out = np.empty((grid.count, size, size), np.float32)
    for r in range(grid.rows):
        for c in range(grid.cols):
            out[r * grid.cols + c] = padded[r * t : r * t + size, c * t : c * t + size]
    return out


def _pad(frame: np.ndarray, pads) -> np.ndarray:
    # np.pad's reflect cannot pad by more than the frame's length at once: repeat until done.
    out = frame
    pads = [list(p) for p in pads]
    while any(p[0] > 0 or p[1] > 0 for p in pads):
        step = [(min(p[0], max(out.shape[i] - 1, 1)), min(p[1], max(out.shape[i] - 1, 1))) for i, p in enumerate(pads)]
        out = np.pad(out, step, mode="reflect" if min(out.shape) > 1 else "edge")
        pads = [[p[0] - s[0], p[1] - s[1]] for p, s in zip(pads, step)]
    return out


def join_tiles(tiles: np.ndarray, grid: TileGrid, *, crop: bool = True) -> np.ndarray:
    """Inverse of :func:`split_tiles`: stitch ``(count, tile, tile)`` tiles (and crop the padding)."""
    t = grid.tile
    mosaic = tiles.reshape(grid.rows, grid.cols, t, t).transpose(0, 2, 1, 3).reshape(grid.padded_shape)
    if not crop:
        return mosaic
    return np.ascontiguousarray(mosaic[: grid.shape[0], : grid.shape[1]])


#: Per-tile normalisations a card may declare (see :func:`tile_maps`).
KINDS = ("min-mean", "range01", "none")


def tile_maps(tiles: np.ndarray, kind: str = "min-mean") -> tuple[np.ndarray, np.ndarray]:
    """Per-tile ``shift`` and ``scale`` (float32): ``normalised = (tile - shift) / scale``.

    Parameters
    ----------
    tiles : ndarray
        ``(count, tile, tile)`` float32.
    kind : {"min-mean", "range01", "none"}
        The card's ``normalization.kind``. ``min-mean`` is seed 002, sec. 2.2: subtract the
        crop's minimum, divide by the mean of the result. A flat tile gets scale 1.

    Returns
    -------
    shift, scale : ndarray
        One value per tile.
    """
    flat = tiles.reshape(len(tiles), -1)
    if kind == "none":
        return np.zeros(len(tiles), np.float32), np.ones(len(tiles), np.float32)
    shift = flat.min(axis=1).astype(np.float32)
    if kind == "min-mean":
        spread = flat.mean(axis=1, dtype=np.float64) - shift
    elif kind == "range01":
        spread = flat.max(axis=1).astype(np.float64) - shift
    else:
        raise InvalidInput(f"normalization {kind!r} is not one emdenoise compresses with ({', '.join(KINDS)}); "
                           "choose another autoencoder.")
    scale = spread.astype(np.float32)
    scale[~(np.isfinite(scale) & (scale > 0))] = 1.0
    return shift, scale
