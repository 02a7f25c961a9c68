"""Backends that run one model on a batch of tiles: ONNX Runtime or a classical filter.

One small interface for both (bioimageio.core habit): ``run(batch)`` takes and returns
float32 arrays of shape (N, 1, H, W).
"""

from __future__ import annotations

import importlib
import re

import numpy as np
import onnxruntime as ort

from emdenoise.engine.cards import ModelCard
from emdenoise.errors import ResourceExhausted

_OOM = re.compile(r"(out of memory|failed to allocate|bad_alloc|cudaErrorMemoryAllocation)", re.I)


def is_out_of_memory(error: BaseException) -> bool:
    """True when an ONNX Runtime or NumPy error means memory ran out."""
    return isinstance(error, MemoryError) or bool(_OOM.search(str(error)))


class OnnxBackend:
    """An ONNX Runtime session for the card's main graph."""

    def __init__(self, card: ModelCard, providers: list[str], *, threads: int = 0, spinning: bool = True):
        graph = next(iter(card.graphs.values()))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        if not spinning:
            # Idle intra-op threads sleep instead of spinning for work; the server sets this, as its
            # gRPC threads (and clients on the same host) need the cores that spinning threads burn.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory pattern: windows change shape with the frame, and the pattern's block on
        # top of the arena cost ~25 % more memory per pixel (1106 -> 862 B/px for
        # sbd-unet32-hrtem on 1280^2 windows) for no measurable speed; outputs are the same bits.
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(str(card.folder / graph.file), options, providers=providers)
        self.input_name = graph.input
        self.output_name = graph.output
        self.provider = self.session.get_providers()[0]
        self.elementwise = False

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            (result,) = self.session.run([self.output_name], {self.input_name: batch})
        except Exception as error:
            if is_out_of_memory(error):
                raise ResourceExhausted(str(error)) from error
            raise
        return np.asarray(result, dtype=np.float32)


class ClassicalBackend:
    """A classical filter from :mod:`emdenoise.baselines`, applied frame by frame."""

    def __init__(self, card: ModelCard):
        spec = card.raw.get("classical") or {}
        registry = importlib.import_module("emdenoise.baselines").REGISTRY
        self.function = registry[spec["function"]]
        self.params = dict(spec.get("params") or {})
        self.provider = "classical"

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = np.empty_like(batch, dtype=np.float32)
        for index in range(batch.shape[0]):
            out[index, 0] = self.function(batch[index, 0], **self.params)
        return out


def make_backend(card: ModelCard, providers: list[str], *, spinning: bool = True):
    """Backend for ``card`` on ``providers`` (``spinning``: see :class:`OnnxBackend`)."""
    if card.backend == "classical":
        return ClassicalBackend(card)
    return OnnxBackend(card, providers, spinning=spinning)
