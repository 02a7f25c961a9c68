"""Protocol-buffer wire format: the one varint reader the hand-written parsers share
(:mod:`emdenoise.chunk_codec` for Denoise chunks, :mod:`emdenoise.engine.backends` for
an ONNX graph's Conv shapes without importing ``onnx``)."""

from __future__ import annotations


def read_varint(data, pos: int, end: int | None = None) -> tuple[int, int]:
    """``(value, next position)`` of the base-128 varint at ``pos``.

    Raises
    ------
    ValueError
        When the varint runs past ``end`` (default: the end of ``data``) or beyond 10 bytes.
    """
    end = len(data) if end is None else end
    value = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint")
