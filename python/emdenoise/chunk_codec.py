"""Denoise stream messages carrying a ``FrameChunk``, written and read without protobuf's copies.

A 1024x1024 float32 result is 4 MiB. Sent as ``DenoiseResponse(chunk=FrameChunk(data=...))``
its pixels were copied four times before gRPC saw them (``bytes`` of the array, into the
message, into the serialized string, and the message building allocated fresh buffers
each frame, whose page faults cost more than the copies), and three times more on the
receiving side (the parsed message, ``chunk.data``, the joined frame). Here a chunk message
is serialized as one ``bytes`` built from a small header and a view of the array, and a
received one is parsed into a view of gRPC's bytes.

The proto stays the contract: :func:`encode_chunk` writes exactly the bytes protobuf's own
serializer writes for the same message (fields in number order, zero scalars left out),
and :func:`parser` hands every message that is not a single chunk in that canonical form
(options, ``JobInfo``, shared-memory frames, anything with unknown or repeated fields) to
protobuf itself, so what it accepts it reads as protobuf would.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from emdenoise.protowire import read_varint
from emdenoise.v1 import denoiser_pb2 as pb

#: Field number of ``chunk`` in both ``DenoiseRequest`` and ``DenoiseResponse``.
CHUNK_FIELD = 2
_CHUNK_TAG = (CHUNK_FIELD << 3) | 2  # length-delimited
_UINT32_MAX = (1 << 32) - 1
_UINT64_MAX = (1 << 64) - 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class RawChunk:
    """A ``FrameChunk`` whose ``data`` is a view (of an array being sent, or of received bytes).

    Reads like the protobuf message where the wire code reads it (:class:`emdenoise.wire.FrameAssembler`).

    Parameters
    ----------
    frame_index, chunk_index, chunk_count : int
        As in ``FrameChunk``.
    header : emdenoise.v1.denoiser_pb2.ArrayHeader or None
        Set on a frame's first chunk.
    data : bytes-like
        The chunk's bytes (little-endian pixels), a C-contiguous buffer of bytes.
    """

    __slots__ = ("frame_index", "chunk_index", "chunk_count", "_header", "data")

    def __init__(self, frame_index: int, chunk_index: int, chunk_count: int, header, data):
        self.frame_index = frame_index
        self.chunk_index = chunk_index
        self.chunk_count = chunk_count
        self._header = header
        self.data = data

    @property
    def header(self) -> pb.ArrayHeader:
        """The header (an empty one when the chunk carries none, as protobuf reads it)."""
        return self._header if self._header is not None else pb.ArrayHeader()

    def HasField(self, name: str) -> bool:  # noqa: N802 -- protobuf's spelling
        if name != "header":
            raise ValueError(f"RawChunk has no optional field {name!r}")
        return self._header is not None

    def to_message(self) -> pb.FrameChunk:
        """The same chunk as a protobuf message (a copy of the data; tests and fallbacks)."""
        message = pb.FrameChunk(frame_index=self.frame_index, chunk_index=self.chunk_index,
                                chunk_count=self.chunk_count, data=bytes(self.data))
        if self._header is not None:
            message.header.CopyFrom(self._header)
        return message


class ChunkMessage:
    """A ``DenoiseRequest`` or ``DenoiseResponse`` whose item is ``chunk``.

    Handed to :func:`serialize` by the sender; made by :func:`parser` on the receiver.
    """

    __slots__ = ("chunk",)

    def __init__(self, chunk: RawChunk):
        self.chunk = chunk

    def WhichOneof(self, group: str) -> str | None:  # noqa: N802 -- protobuf's spelling
        if group != "item":
            raise ValueError(f"no oneof {group!r}")
        return "chunk"

    def HasField(self, name: str) -> bool:  # noqa: N802 -- protobuf's spelling
        return name == "chunk"

    def SerializeToString(self) -> bytes:  # noqa: N802 -- protobuf's spelling
        return encode_chunk(self.chunk)


def encode_chunk(chunk: RawChunk) -> bytes:
    """The wire bytes of ``DenoiseRequest``/``DenoiseResponse(chunk=chunk)``: one copy of the data."""
    head = bytearray()
    if chunk.frame_index:
        head += b"\x08" + _varint(int(chunk.frame_index))
    if chunk.chunk_index:
        head += b"\x10" + _varint(int(chunk.chunk_index))
    if chunk.chunk_count:
        head += b"\x18" + _varint(int(chunk.chunk_count))
    if chunk._header is not None:
        header = chunk._header.SerializeToString()
        head += b"\x22" + _varint(len(header)) + header
    data = memoryview(chunk.data).cast("B")
    if len(data):
        head += b"\x2a" + _varint(len(data))
    prefix = bytes((_CHUNK_TAG,)) + _varint(len(head) + len(data))
    return b"".join((prefix, head, data))


def serialize(message) -> bytes:
    """Response or request serializer of the Denoise stream: chunks by :func:`encode_chunk`, the rest by protobuf."""
    return message.SerializeToString()


def decode_chunk(data: bytes) -> ChunkMessage | None:
    """The chunk a Denoise message holds, its data a view of ``data``; None unless the
    message is exactly one ``chunk`` field whose fields each appear at most once and are all known."""
    end = len(data)
    if end < 2 or data[0] != _CHUNK_TAG:
        return None
    try:
        length, pos = read_varint(data, 1, end)
        if pos + length != end:
            return None
        fields: dict[int, object] = {}
        while pos < end:
            tag, pos = read_varint(data, pos, end)
            number, kind = tag >> 3, tag & 7
            if number in fields:
                return None  # protobuf merges repeats: leave it to protobuf
            if number in (1, 2, 3) and kind == 0:
                value, pos = read_varint(data, pos, end)
                if value > (_UINT64_MAX if number == 1 else _UINT32_MAX):
                    return None
                fields[number] = value
            elif number in (4, 5) and kind == 2:
                size, pos = read_varint(data, pos, end)
                if pos + size > end:
                    return None
                fields[number] = (pos, pos + size)
                pos += size
            else:
                return None
    except ValueError:
        return None
    header = None
    if 4 in fields:
        start, stop = fields[4]
        header = pb.ArrayHeader.FromString(data[start:stop])
    view = memoryview(data)
    start, stop = fields.get(5, (0, 0))
    return ChunkMessage(RawChunk(fields.get(1, 0), fields.get(2, 0), fields.get(3, 0), header, view[start:stop]))


def parser(message_class) -> Callable[[bytes], object]:
    """Deserializer for ``message_class`` (``DenoiseRequest`` or ``DenoiseResponse``): a
    :class:`ChunkMessage` for a canonical chunk, else ``message_class.FromString``."""

    def parse(data: bytes):
        message = decode_chunk(data)
        return message if message is not None else message_class.FromString(data)

    return parse


parse_request = parser(pb.DenoiseRequest)
parse_response = parser(pb.DenoiseResponse)


def chunk_messages(frame: np.ndarray, frame_index: int, *, chunk_bytes: int | None = None) -> Iterator[ChunkMessage]:
    """``frame`` as :class:`ChunkMessage` s, the chunks :func:`emdenoise.wire.frame_to_chunks`
    makes (little-endian, C order, the same sizes), each a view of the frame's bytes."""
    from emdenoise.wire import CHUNK_BYTES

    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    frame = np.ascontiguousarray(frame)
    data = memoryview(frame.astype(frame.dtype.newbyteorder("<"), copy=False).reshape(-1)).cast("B")
    count = max(1, -(-len(data) // chunk_bytes))
    header = pb.ArrayHeader(dtype=frame.dtype.name, shape=list(frame.shape))
    for index in range(count):
        yield ChunkMessage(RawChunk(frame_index, index, count, header if index == 0 else None,
                                    data[index * chunk_bytes:(index + 1) * chunk_bytes]))


#: Full name of the Denoise method.
DENOISE_METHOD = "/emdenoise.v1.Denoiser/Denoise"

__all__ = ["DENOISE_METHOD", "ChunkMessage", "RawChunk", "chunk_messages", "decode_chunk", "encode_chunk",
           "parse_request", "parse_response", "parser", "serialize"]
