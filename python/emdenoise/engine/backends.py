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
from emdenoise.protowire import read_varint

_OOM = re.compile(r"(out of memory|failed to allocate|bad_alloc|cudaErrorMemoryAllocation)", re.I)


#: ONNX Runtime computes convolutions in its NCHWc layout in blocks of 8 (AVX2) or 16 (AVX-512)
#: output channels. A graph whose convolutions all have fewer output channels than the
#: smallest block (the seed 002 kernels: one 1 -> 1 convolution) gains nothing from it:
#: the layout pads the single channel to a whole block and reorders the output back,
#: which took 7.3 ms against 3.6 ms on a 1028^2 window of ede-kernel-stem-5 (1 thread).
NCHWC_BLOCK = 8


def _fields(data: bytes, start: int, end: int):
    """Protocol buffer fields of ``data[start:end]``: (number, wire type, varint value or (start, end))."""
    pos = start
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = read_varint(data, pos)
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protocol buffer wire type {wire} is not read here")


def conv_output_channels(data: bytes) -> list[int | None]:
    """Output channels of every top-level ``Conv`` of an ONNX model (its bytes), from the
    weight initializers' first dimension (None: the weight is not an initializer).

    Reads the protocol buffer fields it needs (ModelProto.graph 7; GraphProto.node 1 and
    .initializer 5; NodeProto.input 1, .op_type 4; TensorProto.dims 1, .name 8) instead
    of importing ``onnx`` (0.7 s) on the inference path.
    """
    graphs = [value for number, wire, value in _fields(data, 0, len(data)) if number == 7 and wire == 2]
    weights, first_dims = [], {}
    for g_start, g_end in graphs:
        for number, wire, (start, end) in ((n, w, v) for n, w, v in _fields(data, g_start, g_end) if w == 2):
            if number == 1:  # NodeProto
                inputs, op_type = [], ""
                for n, w, v in _fields(data, start, end):
                    if w == 2 and n == 1:
                        inputs.append(data[v[0]:v[1]].decode())
                    elif w == 2 and n == 4:
                        op_type = data[v[0]:v[1]].decode()
                if op_type == "Conv" and len(inputs) > 1:
                    weights.append(inputs[1])
            elif number == 5:  # TensorProto
                name, dims = "", []
                for n, w, v in _fields(data, start, end):
                    if n == 1 and w == 0:
                        dims.append(v)
                    elif n == 1 and w == 2:  # packed dims
                        pos = v[0]
                        while pos < v[1]:
                            dim, pos = read_varint(data, pos)
                            dims.append(dim)
                    elif n == 8 and w == 2:
                        name = data[v[0]:v[1]].decode()
                if dims:
                    first_dims[name] = dims[0]
    return [first_dims.get(weight) for weight in weights]


def nchwc_pays(path) -> bool:
    """False when every convolution of the graph at ``path`` has fewer than :data:`NCHWC_BLOCK`
    output channels (see there); True otherwise, and whenever the file cannot be read this way."""
    try:
        with open(path, "rb") as file:
            channels = conv_output_channels(file.read())
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return True
    return not channels or any(c is None or c >= NCHWC_BLOCK for c in channels)


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
        path = card.folder / graph.file
        # Graphs of small convolutions run without the NCHWc layout (see NCHWC_BLOCK): twice as
        # fast, outputs within float32 rounding (<= 1 ulp of the sums) of the NCHWc ones, and the
        # same whatever the tile. Every other graph keeps ONNX Runtime's full optimisation.
        self.nchwc = nchwc_pays(path)
        extra = {} if self.nchwc else {"disabled_optimizers": ["NchwcTransformer"]}
        self.session = ort.InferenceSession(str(path), options, providers=providers, **extra)
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
