"""The engine: runs model cards on frames, with tiling, batching and normalisation.

No gRPC here (ARCHITECTURE.md): the server, the CLI's embedded mode and scripts all call
:class:`Engine` the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from emdenoise.engine import tiling
from emdenoise.engine.backends import make_backend
from emdenoise.engine.batching import BatchPolicy, DynamicBatcher, batch_dimension
from emdenoise.engine.cards import ModelCard
from emdenoise.engine.devices import providers_for
from emdenoise.engine.normalization import fit_normalization
from emdenoise.engine.repository import ModelRepository
from emdenoise.engine.validation import as_frame, as_frames, check_job_options
from emdenoise.errors import InvalidInput, ResourceExhausted

log = logging.getLogger(__name__)

DEFAULT_TILE = 512
DEFAULT_BATCH = 8
MIN_TILE = 64
#: Memory one model call may take (ONNX Runtime's activations for a batch of windows):
#: tiles are chosen to fit it, whole frames when they do. ``$EMDENOISE_MEMORY_BUDGET_MB``
#: or ``Engine(memory_budget=...)`` change it; results do not depend on it.
DEFAULT_MEMORY_BUDGET = 2 << 30
#: Working memory per window pixel when the card gives no ``tile.bytes_per_pixel``: peak
#: RSS growth of sbd-unet32-hrtem (32 channels at full resolution) measured 831-1255 B/px
#: over 768^2..2304x1280 windows (ONNX Runtime's arena grows in powers of two, so the
#: figure jumps with the shape: 866 at 1280^2, 1255 at 2304x944); a generous bound for
#: the smaller graphs.
DEFAULT_BYTES_PER_PIXEL = 1300


def default_memory_budget() -> int:
    """Bytes one model call may use: ``$EMDENOISE_MEMORY_BUDGET_MB`` or :data:`DEFAULT_MEMORY_BUDGET`."""
    value = os.environ.get("EMDENOISE_MEMORY_BUDGET_MB", "").strip()
    if value:
        try:
            megabytes = float(value)
        except ValueError:
            raise InvalidInput(f"EMDENOISE_MEMORY_BUDGET_MB={value!r} is not a number of megabytes.") from None
        if not 16 <= megabytes <= 1 << 24:
            raise InvalidInput(f"EMDENOISE_MEMORY_BUDGET_MB={value} is out of range; give 16 to {1 << 24} megabytes.")
        return int(megabytes * (1 << 20))
    return DEFAULT_MEMORY_BUDGET


class JobCancelled(Exception):
    """The caller's ``cancelled()`` said stop: the frame was abandoned between tile batches."""


class Engine:
    """Load models from folders and denoise frames with them.

    Parameters
    ----------
    model_dirs : list of path-like, optional
        Folders of model folders; default: the bundled repository and the user folder.
    device : {"auto", "cpu", "cuda"}
        Where ONNX graphs run (``auto``: CUDA when a GPU is really usable).
    batch_size : int
        Tiles per ONNX Runtime call; halved automatically when memory runs out.
    tile_size : int, optional
        Largest core tile side for every model. Default: chosen per frame (see
        :meth:`tile_plan`): the least halo work within ``memory_budget``, whole frames when
        they fit. The output is the same either way.
    memory_budget : int, optional
        Bytes one model call may take; default :func:`default_memory_budget`.
    spinning : bool
        Let ONNX Runtime's idle intra-op threads spin for work (its default). The server
        turns it off: its transport threads share the cores (same outputs either way).
    batching : BatchPolicy, optional
        Stack the windows of concurrent calls for the same model and window shape into
        one ONNX Runtime run (:mod:`emdenoise.engine.batching`; the server sets it).
        Graphs with a fixed batch of 1 and classical models run call by call. Default:
        every call runs alone. Outputs are the same bits either way.

    Examples
    --------
    >>> from emdenoise.engine import Engine
    >>> engine = Engine(device="cpu")
    >>> out = engine.denoise(np.ones((64, 64), np.uint16), "ede-kernel-tem-3")  # doctest: +SKIP
    """

    def __init__(
        self,
        model_dirs: list[str | Path] | None = None,
        *,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH,
        tile_size: int | None = None,
        memory_budget: int | None = None,
        spinning: bool = True,
        batching: BatchPolicy | None = None,
    ):
        self.repository = ModelRepository(model_dirs)
        self.spinning = bool(spinning)
        self.providers = providers_for(device)
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.batch_size = max(int(batch_size), 1)
        self.tile_size = check_job_options(tile_size=tile_size)["tile_size"]
        self.memory_budget = int(memory_budget) if memory_budget else default_memory_budget()
        self.batching = batching if batching is not None and batching.enabled else None
        self._backends: dict[str, object] = {}
        self._plans: dict[tuple, tuple[ModelCard, tiling.TilePlan]] = {}  # (card id, shape, tile size)
        self._lock = threading.Lock()

    # -- models -------------------------------------------------------------------------
    def list_cards(self) -> list[ModelCard]:
        """Every usable model card."""
        return self.repository.cards()

    def card(self, model_id: str | None = None, *, modality: str = "any") -> ModelCard:
        """The card of ``model_id``, or the default denoiser for ``modality``."""
        if model_id:
            return self.repository.get(model_id)
        return self.repository.default_for(modality)

    def batching_stats(self) -> dict[str, dict[str, int]]:
        """Per model with a batching backend: ``runs`` shared by several calls and ``calls`` that shared one."""
        with self._lock:
            backends = dict(self._backends)
        return {model: {"runs": b.runs, "calls": b.batched_calls} for model, b in backends.items()
                if isinstance(b, DynamicBatcher)}

    def _backend(self, card: ModelCard):
        with self._lock:  # sessions are created once and then shared by every thread
            backend = self._backends.get(card.id)
            if backend is None:
                backend = make_backend(card, self.providers, spinning=self.spinning)
                session = getattr(backend, "session", None)
                if self.batching is not None and session is not None and batch_dimension(session) is None:
                    backend = DynamicBatcher(backend, self.batching)
                self._backends[card.id] = backend
            return backend

    # -- denoising ----------------------------------------------------------------------
    def denoise(self, image: np.ndarray, model_id: str | None = None, **options) -> np.ndarray:
        """Denoise a 2-D frame or an N-D stack (frames on the last two axes).

        Parameters
        ----------
        image : ndarray
            uint8/uint16/int16/int32/float32/float64 pixels.
        model_id : str, optional
            Model to use; default: the card flagged default for ``options["modality"]``.
        **options
            ``modality``, ``gain``, ``offset`` (for counts-normalised models).

        Returns
        -------
        ndarray
            float32, same shape as ``image``.
        """
        stack = as_frames(image)
        out = np.stack(list(self.iter_denoise(stack, model_id, **options)))
        return out.reshape(np.shape(image))

    def iter_denoise(
        self, frames: Iterable[np.ndarray], model_id: str | None = None, **options
    ) -> Iterator[np.ndarray]:
        """Denoise frames one at a time as they arrive (the stack is never held whole)."""
        card = self.card(model_id, modality=options.pop("modality", "any"))
        for index, frame in enumerate(frames):
            yield self.denoise_frame(frame, card, index=index, **options)

    def denoise_frame(
        self,
        frame: np.ndarray,
        card: ModelCard,
        *,
        index: int | None = None,
        gain: float | None = None,
        offset: float | None = None,
        tile_size: int | None = None,
        cancelled: Callable[[], bool] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Denoise one 2-D frame with ``card``'s model (tiled, batched, normalised).

        ``tile_size`` overrides the engine's and the card's largest tile side for this frame
        (at least ``MIN_TILE``, so a request cannot ask for millions of tiny tiles).
        ``cancelled`` is asked before each batch of tiles; when it returns True the frame
        is abandoned with :class:`JobCancelled` (a server whose client went away stops
        computing at once instead of finishing the frame). ``out``, a writable C-contiguous
        float32 array of the frame's shape, receives the result (the server's shared-memory
        slot: no copy of it afterwards); it is returned. It must not overlap ``frame``'s
        memory unless the frame is no longer needed once normalised (the slot holds both:
        the frame is read before anything is written).

        Raises
        ------
        InvalidInput
            A gain, offset or tile size that :func:`check_job_options` refuses, a frame
            :func:`as_frame` refuses, or values too large for float32 once normalised or
            denoised (never returned as inf or NaN).
        """
        if card.task != "denoise":
            raise InvalidInput(f"model {card.id} is a {card.task} model, not a denoiser; choose a denoise model.")
        tile_size = check_job_options(tile_size=tile_size)["tile_size"]
        frame = as_frame(frame, index=index, exact_integers=True)  # uint16 stays uint16 until normalised
        where = f"frame {index}" if index is not None else "the frame"
        backend = self._backend(card)
        # A batching backend knows this frame is coming, so a run may wait for its windows.
        with backend.caller() if isinstance(backend, DynamicBatcher) else contextlib.nullcontext():
            mapping = fit_normalization(frame, card.normalization, gain=gain, offset=offset)
            tile_size = max(tile_size, MIN_TILE) if tile_size else None
            plan = self.tile_plan(frame.shape, card, tile_size=tile_size)
            # normalised straight into the padded frame (no normalised copy to pad afterwards)
            padded = tiling.padded_frame(frame.shape, plan, lambda out: mapping.forward(frame, where=where, out=out))
            result = self._run_tiled(padded, plan, card, cancelled=cancelled)
        if out is not None and (out.dtype != np.float32 or out.shape != frame.shape or not out.flags.c_contiguous
                                or not out.flags.writeable or np.may_share_memory(out, result)):
            out = None  # not a place the result can go: a new array, as without it
        return mapping.inverse(result, where=where, out=out)

    def tile_plan(self, shape: tuple[int, int], card: ModelCard, *, tile_size: int | None = None) -> tiling.TilePlan:
        """How a frame of ``shape`` is cut for ``card`` (see :mod:`emdenoise.engine.tiling`).

        Classical models run whole frames. ``global`` models keep their card's tile size
        (their output depends on the tile, so the cut is part of the model). Other models
        take ``tile_size`` (this call's, else the engine's) when one is given; otherwise the
        cut with the least halo work whose window fits :meth:`window_budget`, which is the
        whole frame when it fits. The halo covers the receptive field and core origins stay
        on the pooling grid, so every cut gives the same output.
        """
        key = (card.id, tuple(shape), tile_size)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is card:
            return cached[1]
        plan = self._tile_plan(tuple(shape), card, tile_size=tile_size)
        if len(self._plans) >= 256:  # frame shapes of a long session; plans are cheap to remake
            self._plans.clear()
        self._plans[key] = (card, plan)
        return plan

    def _tile_plan(self, shape: tuple[int, int], card: ModelCard, *, tile_size: int | None = None) -> tiling.TilePlan:
        if card.backend == "classical":
            return tiling.plan_tiles(shape, tile_size=max(shape), halo=0)
        tile = card.tile
        multiple = int(tile.get("multiple_of", 1))
        size = tile_size or self.tile_size
        if card.is_global:
            halo = int(tile.get("overlap", 0))
            return tiling.plan_tiles(shape, tile_size=int(size or tile.get("size") or DEFAULT_TILE), halo=halo,
                                     multiple_of=multiple)
        halo = card.receptive_field // 2
        if size:
            return tiling.plan_tiles(shape, tile_size=int(size), halo=halo, multiple_of=multiple)
        return tiling.plan_within(shape, halo=halo, multiple_of=multiple, max_window_pixels=self.window_budget(card),
                                  min_side=MIN_TILE)

    def window_budget(self, card: ModelCard) -> int:
        """Largest window (pixels, halo included) one call may take within the memory budget;
        never less than the card's own tile with its halo."""
        tile = card.tile
        per_pixel = float(tile.get("bytes_per_pixel") or DEFAULT_BYTES_PER_PIXEL)
        side = int(tile.get("size") or DEFAULT_TILE) + 2 * ((card.receptive_field or 0) // 2)
        return max(int(self.memory_budget / per_pixel), side * side)

    def _run_tiled(self, padded: np.ndarray, plan: tiling.TilePlan, card: ModelCard, *,
                   cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Run all tiles of ``padded`` (the frame padded for ``plan``); when memory runs out, halve
        the batch, then the tile size (CSBDeep habit). Returns the stitched float32 model output
        (for a single tile a view of the model's output)."""
        backend = self._backend(card)
        shape = plan.shape
        # As many windows per call as the budget holds (a batch of 8 large tiles took ~8 GB).
        batch_size = self.batch_size
        if card.backend != "classical":
            batch_size = min(batch_size, max(self.window_budget(card) // (plan.window[0] * plan.window[1]), 1))
        while True:
            try:
                return self._run_plan(padded, plan, backend, batch_size, cancelled)
            except ResourceExhausted:
                if batch_size > 1:
                    batch_size = max(batch_size // 2, 1)
                elif card.backend != "classical" and max(plan.core) > MIN_TILE:
                    frame = padded[plan.halo : plan.halo + shape[0], plan.halo : plan.halo + shape[1]]
                    plan = self.tile_plan(shape, card, tile_size=max(max(plan.core) // 2, MIN_TILE))
                    padded = tiling.pad_frame(frame, plan)
                else:
                    raise ResourceExhausted(
                        f"model {card.id} ran out of memory even on single {plan.window[0]}x{plan.window[1]} tiles; "
                        "free memory (other jobs), lower --max-parallel-frames on the server, or use a smaller frame."
                    ) from None
                log.warning("out of memory on %s: retrying with batch %d, tile %s", card.id, batch_size, plan.core)

    @staticmethod
    def _run_plan(padded: np.ndarray, plan: tiling.TilePlan, backend, batch_size: int,
                  cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        shape = plan.shape
        if len(plan.tiles) == 1 and padded.shape == plan.window:  # the whole frame in one window: no copies
            if cancelled is not None and cancelled():
                raise JobCancelled()
            batch = padded[None, None]
            results = backend.run(batch, limit=batch_size) if isinstance(backend, DynamicBatcher) else backend.run(batch)
            h = plan.halo
            return results[0, 0, h : h + shape[0], h : h + shape[1]]
        output = np.empty(shape, np.float32)
        windows = list(tiling.iter_windows(padded, plan))
        for start in range(0, len(windows), batch_size):
            if cancelled is not None and cancelled():
                raise JobCancelled()
            chunk = windows[start : start + batch_size]
            batch = np.ascontiguousarray(np.stack([window for _, window in chunk])[:, None], dtype=np.float32)
            if isinstance(backend, DynamicBatcher):  # shared with concurrent calls, within this call's budget
                results = backend.run(batch, limit=batch_size)
            else:
                results = backend.run(batch)
            for (tile, _), result in zip(chunk, results):
                tiling.place(output, tile, result[0], plan)
        return output
