"""Cut frames into fixed-shape tiles with a halo and stitch the results back.

The halo is the receptive-field margin (CSBDeep, bioimageio habit): each tile is run with
``halo`` extra pixels on every side, taken from the frame or, at its borders, from a
reflection of it (seed 001, sec. 3.2: "reflection padding"); the halo is cropped from the
output. For a model whose receptive field fits inside the halo the stitched result equals
the untiled one. Tiles have one shape per (model, frame size), so ONNX Runtime does not
re-plan for every input.

:func:`plan_within` chooses the tiles itself: the cut whose windows hold the fewest pixels
in all (least halo work) among those whose largest window fits a pixel budget, so a frame
that fits runs whole. Because every core origin is a multiple of the pooling multiple and
the halo covers the receptive field, the stitched output is the same whatever cut is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A core region ``[y0:y0+height, x0:x0+width]`` of the frame."""

    y0: int
    x0: int


@dataclass(frozen=True)
class TilePlan:
    """How one frame of ``shape`` is cut: core tile size, halo and tile origins."""

    shape: tuple[int, int]
    core: tuple[int, int]
    halo: int
    multiple_of: int
    tiles: tuple[Tile, ...]

    @property
    def window(self) -> tuple[int, int]:
        """Shape of the array each tile feeds to the model (core + halo, padded to the multiple)."""
        return tuple(_round_up(c + 2 * self.halo, self.multiple_of) for c in self.core)  # type: ignore[return-value]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_tiles(shape: tuple[int, int], *, tile_size: int, halo: int, multiple_of: int = 1) -> TilePlan:
    """Plan tiles of core ``tile_size`` (clipped to the frame) with a ``halo`` margin.

    Tile origins are multiples of the core size, itself a multiple of ``multiple_of``, so
    networks that pool see the same pooling grid in every tile as in the whole frame; the
    last row and column of tiles reach past the frame into its reflection.

    Parameters
    ----------
    shape : (int, int)
        Frame height and width.
    tile_size : int
        Largest core tile side; a frame that fits runs as a single tile.
    halo : int
        Margin added on every side (receptive-field radius, or the overlap of global models).
    multiple_of : int
        Windows are padded up to a multiple of this (networks with pooling need it).

    Returns
    -------
    TilePlan
    """
    multiple = max(int(multiple_of), 1)
    largest = max(tile_size // multiple, 1) * multiple
    core = tuple(min(largest, _round_up(length, multiple)) for length in shape)
    starts = [range(0, length, side) for length, side in zip(shape, core)]
    tiles = tuple(Tile(y, x) for y in starts[0] for x in starts[1])
    return TilePlan(tuple(shape), core, int(halo), multiple, tiles)  # type: ignore[arg-type]


def plan_with_core(shape: tuple[int, int], core: tuple[int, int], *, halo: int, multiple_of: int = 1) -> TilePlan:
    """Plan tiles of exactly ``core`` (each side a multiple of ``multiple_of``, clipped to the frame)."""
    multiple = max(int(multiple_of), 1)
    core = tuple(min(_round_up(max(int(c), 1), multiple), _round_up(length, multiple)) for c, length in zip(core, shape))
    starts = [range(0, length, side) for length, side in zip(shape, core)]
    tiles = tuple(Tile(y, x) for y in starts[0] for x in starts[1])
    return TilePlan(tuple(shape), core, int(halo), multiple, tiles)  # type: ignore[arg-type]


def work_pixels(plan: TilePlan) -> int:
    """Pixels the model computes for one frame: every tile's whole window."""
    return len(plan.tiles) * plan.window[0] * plan.window[1]


def halo_fraction(plan: TilePlan) -> float:
    """Share of the computed pixels that are halo or padding (0 when nothing is wasted)."""
    return 1.0 - plan.shape[0] * plan.shape[1] / work_pixels(plan)


def _cuts(length: int, multiple: int, min_side: int) -> list[int]:
    """Distinct core sides (multiples of ``multiple``, at least ``min_side`` unless the frame is
    smaller) that cut ``length`` into 1, 2, 3... equal tiles."""
    sides = []
    for count in range(1, max(length // max(min_side, multiple), 1) + 1):
        side = _round_up(-(-length // count), multiple)
        if side not in sides and -(-length // side) == count:
            sides.append(side)
    return sides


def plan_within(shape: tuple[int, int], *, halo: int, multiple_of: int = 1, max_window_pixels: int,
                min_side: int = 64) -> TilePlan:
    """The cut of ``shape`` with the least halo work whose windows hold at most ``max_window_pixels``.

    Each axis is cut into n equal cores (rounded up to ``multiple_of``); among the cuts whose
    window fits the budget the one computing the fewest pixels wins (ties: fewer tiles).
    A whole frame that fits is one tile. When not even the smallest cut fits, the smallest
    window is used (the engine's out-of-memory retry still shrinks further).

    Parameters
    ----------
    shape : (int, int)
        Frame height and width.
    halo : int
        Margin on every side (receptive-field radius).
    multiple_of : int
        Core sides and windows are multiples of this (pooling networks need it).
    max_window_pixels : int
        Largest window (height x width, halo included) one model call may take.
    min_side : int
        Smallest core side considered (bounds the search on huge frames).

    Returns
    -------
    TilePlan
    """
    multiple = max(int(multiple_of), 1)
    best = None
    for core_y in _cuts(shape[0], multiple, min_side):
        window_y = _round_up(core_y + 2 * halo, multiple)
        for core_x in _cuts(shape[1], multiple, min_side):
            window_x = _round_up(core_x + 2 * halo, multiple)
            count = -(-shape[0] // core_y) * -(-shape[1] // core_x)
            fits = window_y * window_x <= max_window_pixels
            key = (not fits, count * window_y * window_x if fits else window_y * window_x, count)
            if best is None or key < best[0]:
                best = (key, (core_y, core_x))
    return plan_with_core(shape, best[1], halo=halo, multiple_of=multiple)


def frame_pads(shape: tuple[int, int], plan: TilePlan) -> list[tuple[int, int]]:
    """(before, after) margins of each axis: the halo, and on the far sides far enough for the last tiles."""
    pads = []
    for length, side, window in zip(shape, plan.core, plan.window):
        covered = _round_up(length, side)
        pads.append((plan.halo, covered - length + window - side - plan.halo))
    return pads


def pad_frame(frame: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Reflect-pad ``frame`` by the halo, and on the far sides far enough for the last tiles."""
    return np.pad(frame, frame_pads(frame.shape, plan), mode="reflect" if min(frame.shape) > 1 else "edge")


def padded_frame(shape: tuple[int, int], plan: TilePlan, fill: Callable[[np.ndarray], object]) -> np.ndarray:
    """The same float32 array as ``pad_frame(frame, plan)``, made by ``fill(interior)`` writing the
    frame straight into the padded array's interior (a view), whose margins are then reflected in
    place: one pass over the frame instead of two, and no second frame-sized array.

    Margins longer than one reflection (a frame smaller than its halo) go through :func:`pad_frame`.
    """
    pads = frame_pads(shape, plan)
    (top, bottom), (left, right) = pads
    height, width = shape
    padded = np.empty((top + height + bottom, left + width + right), np.float32)
    interior = padded[top : top + height, left : left + width]
    if min(shape) < 2 or max(top, bottom) > height - 1 or max(left, right) > width - 1:
        fill(interior)
        return pad_frame(np.array(interior), plan)
    fill(interior)
    rows = padded[:, left : left + width]  # numpy's reflect: axis 0 first, then axis 1 over every row
    if top:
        rows[:top] = rows[top + 1 : 2 * top + 1][::-1]
    if bottom:
        rows[top + height :] = rows[top + height - 1 - bottom : top + height - 1][::-1]
    if left:
        padded[:, :left] = padded[:, left + 1 : 2 * left + 1][:, ::-1]
    if right:
        padded[:, left + width :] = padded[:, left + width - 1 - right : left + width - 1][:, ::-1]
    return padded


def iter_windows(padded: np.ndarray, plan: TilePlan) -> Iterator[tuple[Tile, np.ndarray]]:
    """Yield each tile with its model input window cut from the padded frame."""
    window_h, window_w = plan.window
    for tile in plan.tiles:
        yield tile, padded[tile.y0 : tile.y0 + window_h, tile.x0 : tile.x0 + window_w]


def place(output: np.ndarray, tile: Tile, result: np.ndarray, plan: TilePlan) -> None:
    """Write the core of one tile's model output into the stitched frame (cropped at its edges)."""
    height = min(plan.core[0], output.shape[0] - tile.y0)
    width = min(plan.core[1], output.shape[1] - tile.x0)
    h = plan.halo
    output[tile.y0 : tile.y0 + height, tile.x0 : tile.x0 + width] = result[h : h + height, h : h + width]
