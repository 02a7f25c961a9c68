"""Frames on the wire: typed arrays cut into chunks below gRPC's message limit and put
back together, with every inconsistency reported as :class:`InvalidInput`.

Shared by the client and the server (ARCHITECTURE.md, "Wire").
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from emdenoise.engine.validation import MAX_FRAME_BYTES, check_dtype
from emdenoise.errors import InvalidInput, ResourceExhausted
from emdenoise.v1 import denoiser_pb2 as pb

# 4 MiB is gRPC's default receive limit and includes framing: stay far below it.
CHUNK_BYTES = 2 * 1024 * 1024
#: Optional scores a training progress event carries after each held-out evaluation
#: (``TrainingEvent`` fields of the same names; seed 004 CSS and the two error estimates,
#: adapt's held-out error and classical-auto's by the same criterion).
HELD_OUT_SCORES = ("css", "paired_mse", "thinned_mse", "held_out_mse", "classical_mse")


def frame_to_chunks(frame: np.ndarray, frame_index: int, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.FrameChunk]:
    """Cut one 2-D frame into :class:`FrameChunk` messages (little-endian, C order)."""
    frame = np.ascontiguousarray(frame)
    # one copy per chunk (bytes of a memoryview slice), not the whole frame's tobytes() and then its slices
    data = memoryview(frame.astype(frame.dtype.newbyteorder("<"), copy=False).reshape(-1)).cast("B")
    count = max(1, -(-len(data) // chunk_bytes))
    header = pb.ArrayHeader(dtype=frame.dtype.name, shape=list(frame.shape))
    for index in range(count):
        piece = bytes(data[index * chunk_bytes : (index + 1) * chunk_bytes])
        yield pb.FrameChunk(
            frame_index=frame_index,
            chunk_index=index,
            chunk_count=count,
            header=header if index == 0 else None,
            data=piece,
        )


def check_header(header: pb.ArrayHeader, frame_index: int) -> tuple[np.dtype, tuple[int, int], int]:
    """dtype, shape and byte size of a frame's header, or the error a user can act on.

    Raises
    ------
    InvalidInput
        No dtype, an unsupported one, or not 2-D.
    """
    dtype = check_dtype(header.dtype) if header.dtype else None
    if dtype is None:
        raise InvalidInput(f"frame {frame_index}: the header names no dtype.")
    shape = tuple(int(n) for n in header.shape)
    if len(shape) != 2:
        raise InvalidInput(
            f"frame {frame_index} has shape {shape}; send 2-D frames (height, width), one per message series."
        )
    return dtype, shape, shape[0] * shape[1] * dtype.itemsize  # Python ints: no overflow on absurd shapes


def check_frame_bytes(nbytes: int, frame_index: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
    """Refuse a frame of more than ``max_frame_bytes`` bytes with :class:`ResourceExhausted`."""
    if nbytes > max_frame_bytes:
        raise ResourceExhausted(
            f"frame {frame_index} is {nbytes / 2**20:.0f} MiB, above the server's "
            f"{max_frame_bytes / 2**20:.0f} MiB per-frame limit; crop or bin it, or raise --max-frame-mib."
        )


class FrameAssembler:
    """Collect chunks into frames; frames must arrive in order, chunks of a frame too.

    Parameters
    ----------
    max_frame_bytes : int
        Frames announcing more bytes are refused with :class:`ResourceExhausted`.
    """

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.max_frame_bytes = max_frame_bytes
        self.next_frame = 0
        self._reset()

    def _reset(self) -> None:
        self._header: pb.ArrayHeader | None = None
        self._parts: list = []  # bytes, or views of received messages (emdenoise.chunk_codec)
        self._received = 0
        self._expected_chunks = 0
        self._expected_bytes = 0

    @property
    def in_progress(self) -> bool:
        """True while a frame has started but not all its chunks arrived."""
        return self._header is not None

    def add(self, chunk: pb.FrameChunk) -> np.ndarray | None:
        """Add one chunk; returns the frame when its last chunk arrived, else None."""
        if chunk.frame_index != self.next_frame:
            raise InvalidInput(
                f"chunk of frame {chunk.frame_index} arrived while frame {self.next_frame} was expected; "
                "send frames in order."
            )
        if chunk.chunk_index != len(self._parts):
            raise InvalidInput(
                f"frame {chunk.frame_index}: chunk {chunk.chunk_index} arrived out of order "
                f"(expected chunk {len(self._parts)}); send chunks in order."
            )
        if chunk.chunk_index == 0:
            self._start(chunk)
        elif chunk.chunk_count != self._expected_chunks:
            raise InvalidInput(f"frame {chunk.frame_index}: chunks disagree on the chunk count.")
        self._parts.append(chunk.data)
        self._received += len(chunk.data)
        if self._received > self._expected_bytes:
            raise InvalidInput(
                f"frame {chunk.frame_index} carries more bytes than its declared shape and dtype allow."
            )
        if len(self._parts) < self._expected_chunks:
            return None
        return self._finish(chunk.frame_index)

    def _start(self, chunk: pb.FrameChunk) -> None:
        if not chunk.HasField("header"):
            raise InvalidInput(f"frame {chunk.frame_index}: its first chunk has no header (dtype and shape).")
        _, _, nbytes = check_header(chunk.header, chunk.frame_index)
        if chunk.chunk_count < 1:
            raise InvalidInput(f"frame {chunk.frame_index}: chunk_count must be at least 1.")
        check_frame_bytes(nbytes, chunk.frame_index, self.max_frame_bytes)
        self._header = chunk.header
        self._expected_chunks = chunk.chunk_count
        self._expected_bytes = nbytes

    def add_whole(self, frame_index: int) -> None:
        """Count frame ``frame_index``, which arrived whole by another way (shared memory), in the order."""
        if self.in_progress:
            raise InvalidInput(f"frame {frame_index} arrived in the middle of frame {self.next_frame}'s chunks; "
                               "send the chunks of a frame together.")
        if frame_index != self.next_frame:
            raise InvalidInput(
                f"frame {frame_index} arrived while frame {self.next_frame} was expected; send frames in order."
            )
        self.next_frame += 1

    def _finish(self, frame_index: int) -> np.ndarray:
        header = self._header
        if self._received != self._expected_bytes:
            raise InvalidInput(
                f"frame {frame_index} carries {self._received} bytes but its shape {tuple(header.shape)} and "
                f"dtype {header.dtype} need {self._expected_bytes}."
            )
        dtype = np.dtype(header.dtype).newbyteorder("<")
        if len(self._parts) == 1:  # a view of the message's bytes, no copy
            frame = np.frombuffer(self._parts[0], dtype=dtype)
        else:  # one copy of the parts into an array of its own (b"".join of views would copy each twice)
            data = np.empty(self._expected_bytes, np.uint8)
            position = 0
            for part in self._parts:
                data[position:position + len(part)] = np.frombuffer(part, np.uint8)
                position += len(part)
            frame = data.view(dtype)
        frame = frame.reshape(tuple(header.shape))
        self._reset()
        self.next_frame += 1
        return frame.astype(frame.dtype.newbyteorder("="), copy=False)
