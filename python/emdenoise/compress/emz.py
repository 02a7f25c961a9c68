"""The ``.emz`` file: a stack stored as quantised, zstd-coded autoencoder latents.

Layout (little-endian)::

    b"\\x89EMZ\\r\\n\\x1a\\n"                 signature (catches text-mode transfers, as PNG's)
    u16 format, u32 n, n bytes JSON, u32 crc32   header (model, layout, source, metadata)
    per frame: u32 n, u32 crc32, n bytes      one zstd frame (with its own checksum) holding
                                              shift[t], scale[t], low[d], high[d] (float32)
                                              and the codes (t, d, s, s) (uint8 or uint16)
    b"EMZ-END\\0", u32 frame count           trailer: a file cut short is told from a whole one

The header names the model (id, version, encoder and decoder sha256), the latent depth,
tile size and tile grid, the per-tile normalisation kind, the quantisation, the original
frame shape, stack shape, axes and dtype, and the image metadata (pixel size, unit,
frame interval, slice labels, ImageJ Info, gain/offset/dose). Seed 002, sec. 2 for the
latents; every frame keeps each tile's normalisation so decoding can invert it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import zstandard

from emdenoise.compress.codec import EncodedFrame
from emdenoise.compress.grid import plan_grid
from emdenoise.compress.quantize import QuantisedLatents, dequantise, quantise
from emdenoise.engine.cards import MODEL_ID_PATTERN
from emdenoise.engine.validation import MAX_FRAME_BYTES, check_frame_size
from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.outputs import check_target, commit, unique_temporary

SIGNATURE = b"\x89EMZ\r\n\x1a\n"
TRAILER = b"EMZ-END\x00"
FORMAT = 1
SUFFIX = ".emz"
DEFAULT_LEVEL = 19
_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<HI")
_RECORD = struct.Struct("<II")


class EmzError(InvalidInput):
    """An ``.emz`` file that is not one, is damaged or cut short."""


@dataclass
class EmzHeader:
    """What an ``.emz`` file says about its latents (``raw`` is the JSON header)."""

    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.raw["model"])

    @property
    def model_id(self) -> str:
        return str(self.raw["model"]["id"])

    @property
    def encoder_sha256(self) -> str:
        return str(self.raw["model"]["encoder_sha256"])

    @property
    def frame_count(self) -> int:
        return int(self.raw["frame_count"])

    @property
    def frame_shape(self) -> tuple[int, int]:
        height, width = self.raw["frame_shape"]
        return int(height), int(width)

    @property
    def tile(self) -> int:
        return int(self.raw["tile"]["size"])

    @property
    def depth(self) -> int:
        return int(self.raw["latent"]["depth"])

    @property
    def side(self) -> int:
        return int(self.raw["latent"]["side"])

    @property
    def bits(self) -> int:
        return int(self.raw["quantisation"]["bits"])

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.raw.get("source") or {})

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.raw.get("metadata") or {})


def make_header(
    info: dict[str, Any],
    *,
    frame_shape: tuple[int, int],
    frame_count: int,
    bits: int,
    level: int,
    source: dict[str, Any],
    metadata: dict[str, Any],
) -> EmzHeader:
    """The header of a new file from a codec's ``info`` (see ``AutoencoderSpec.info``)."""
    grid = plan_grid(frame_shape, int(info["tile_size"]))
    return EmzHeader({
        "format": FORMAT,
        "model": {
            "id": info["model_id"],
            "version": info.get("model_version", ""),
            "encoder_sha256": info["encoder_sha256"],
            "decoder_sha256": info.get("decoder_sha256", ""),
        },
        "latent": {"depth": int(info["depth"]), "side": int(info["latent_side"])},
        "tile": {"size": grid.tile, "rows": grid.rows, "cols": grid.cols},
        "normalization": {"kind": info.get("normalization", ""), "per": "tile", "source": "seed 002, sec. 2.2"},
        "quantisation": {"bits": int(bits), "per": "frame and latent channel", "codec": "zstd", "level": int(level)},
        "frame_shape": [int(frame_shape[0]), int(frame_shape[1])],
        "frame_count": int(frame_count),
        "source": source,
        "metadata": metadata,
        "emdenoise_version": info.get("emdenoise_version", ""),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })


class EmzWriter:
    """Write an ``.emz`` file frame by frame (to a temporary file of its own, renamed when complete).

    Parameters
    ----------
    path : path-like
        Output file; an existing one is replaced only with ``overwrite``.
    header : EmzHeader
        From :func:`make_header`; ``frame_count`` frames must follow.
    overwrite : bool
    """

    def __init__(self, path: str | os.PathLike, header: EmzHeader, *, overwrite: bool = False):
        self.path = Path(path)
        check_target(self.path, overwrite=overwrite)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"output folder {parent} does not exist; create it first.")
        self.header = header
        self.overwrite = overwrite
        self.written = 0
        level = int(header.raw["quantisation"]["level"])
        self._zstd = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._temporary = unique_temporary(self.path)
        self._handle: BinaryIO = open(self._temporary, "wb")
        text = json.dumps(header.raw, sort_keys=True).encode("utf-8")
        self._handle.write(SIGNATURE + _HEAD.pack(FORMAT, len(text)) + text + _U32.pack(zlib.crc32(text)))

    def write_frame(self, encoded: EncodedFrame) -> int:
        """Quantise, code and append one frame; returns the bytes it took."""
        header = self.header
        if tuple(encoded.shape) != header.frame_shape:
            raise InvalidInput(f"frame {self.written} is {encoded.shape}, but the stack's frames are {header.frame_shape}.")
        if self.written >= header.frame_count:
            raise InvalidInput(f"received more than the {header.frame_count} frames announced.")
        q = quantise(encoded.latents, header.bits)
        parts = [encoded.shift, encoded.scale, q.low, q.high]
        body = b"".join(np.ascontiguousarray(p, "<f4").tobytes() for p in parts)
        body += np.ascontiguousarray(q.codes, q.codes.dtype.newbyteorder("<")).tobytes()
        payload = self._zstd.compress(body)
        self._handle.write(_RECORD.pack(len(payload), zlib.crc32(payload)) + payload)
        self.written += 1
        return _RECORD.size + len(payload)

    def close(self) -> Path:
        """Finish the file (all frames written) and move it to its name."""
        try:
            if self.written != self.header.frame_count:
                raise InvalidInput(
                    f"expected {self.header.frame_count} frames but received {self.written}; the job was cut short."
                )
            self._handle.write(TRAILER + _U32.pack(self.written))
            self._handle.close()
            commit(self._temporary, self.path, overwrite=self.overwrite)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Drop a partial file."""
        if not self._handle.closed:
            self._handle.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc):
        if kind is not None:
            self.abort()


def _read_exact(handle: BinaryIO, count: int, path: Path, what: str) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise EmzError(f"{path.name} is truncated ({what} is incomplete); copy the file again or compress the original anew.")
    return data


def _open(path: Path) -> BinaryIO:
    if not path.is_file():
        raise UserError(f"input {path} does not exist; check the path.")
    return open(path, "rb")


def _read_header(handle: BinaryIO, path: Path) -> EmzHeader:
    start = handle.read(len(SIGNATURE))
    if start != SIGNATURE:
        raise EmzError(f"{path.name} is not an .emz file (it lacks the EMZ signature); give a file written by 'emdenoise compress'.")
    version, length = _HEAD.unpack(_read_exact(handle, _HEAD.size, path, "its header"))
    if version > FORMAT:
        raise EmzError(f"{path.name} uses .emz format {version}, newer than this emdenoise reads ({FORMAT}); upgrade emdenoise.")
    if length > 64 << 20:
        raise EmzError(f"{path.name} is corrupt (its header claims {length} bytes); copy the file again or compress the original anew.")
    text = _read_exact(handle, length, path, "its header")
    (crc,) = _U32.unpack(_read_exact(handle, _U32.size, path, "its header"))
    if zlib.crc32(text) != crc:
        raise EmzError(f"{path.name} is corrupt (its header fails its checksum); copy the file again or compress the original anew.")
    try:
        raw = json.loads(text.decode("utf-8"))
        header = EmzHeader(raw)
        _ = (header.model_id, header.encoder_sha256, header.frame_count, header.frame_shape, header.tile,
             header.depth, header.side, header.bits)
    except (ValueError, KeyError, TypeError) as error:
        raise EmzError(f"{path.name} has an unreadable header ({error}); it was not written by a compatible emdenoise.") from None
    _check_header(header, path)
    return header


def _check_header(header: EmzHeader, path: Path) -> None:
    """Refuse a header whose sizes the file cannot back or memory cannot hold, before any allocation."""
    damaged = f"{path.name} has a damaged header ({{}}); copy the file again or compress the original anew."
    sizes = {"frame height": header.frame_shape[0], "frame width": header.frame_shape[1], "tile size": header.tile,
             "latent depth": header.depth, "latent side": header.side}
    for what, value in sizes.items():
        if value < 1:
            raise EmzError(damaged.format(f"its {what} is {value}"))
    if header.bits not in (8, 16) or header.frame_count < 0:
        raise EmzError(damaged.format(f"{header.bits} bits, {header.frame_count} frames"))
    if not MODEL_ID_PATTERN.match(header.model_id):  # the id becomes part of output file names
        raise EmzError(damaged.format(f"its model id {header.model_id[:40]!r} is not a model name"))
    if header.frame_count * (_RECORD.size + 1) > path.stat().st_size:
        raise EmzError(damaged.format(f"it announces {header.frame_count} frames, more than the file can hold"))
    check_frame_size(*header.frame_shape, where=path.name)
    grid = plan_grid(header.frame_shape, header.tile)
    latents = grid.count * header.depth * header.side ** 2 * 4  # float32 once dequantised
    if latents > MAX_FRAME_BYTES:
        raise EmzError(damaged.format(f"its latents need {latents >> 20} MiB per frame"))


def read_header(path: str | os.PathLike) -> EmzHeader:
    """The header of an ``.emz`` file (checked: signature, format, checksum).

    Raises
    ------
    EmzError
        Not an ``.emz`` file, a newer format, a damaged or truncated header.
    """
    path = Path(path)
    with _open(path) as handle:
        return _read_header(handle, path)


def iter_frames(path: str | os.PathLike) -> Iterator[EncodedFrame]:
    """The frames of an ``.emz`` file as float32 latents, each checked as it is read.

    Raises
    ------
    EmzError
        A frame or the trailer is missing (truncated file), a checksum fails (corrupt
        file), or bytes follow the trailer.
    """
    path = Path(path)
    with _open(path) as handle:
        header = _read_header(handle, path)
        grid = plan_grid(header.frame_shape, header.tile)
        count, depth, side = grid.count, header.depth, header.side
        code_dtype = np.dtype("<u1" if header.bits == 8 else "<u2")
        sizes = [count * 4, count * 4, depth * 4, depth * 4, count * depth * side * side * code_dtype.itemsize]
        expected = sum(sizes)
        decompressor = zstandard.ZstdDecompressor()
        total = header.frame_count
        for index in range(total):
            what = f"frame {index} of {total}"
            length, crc = _RECORD.unpack(_read_exact(handle, _RECORD.size, path, what))
            if length > expected + (expected >> 3) + (1 << 16):
                raise _corrupt(path, what)
            payload = _read_exact(handle, length, path, what)
            if zlib.crc32(payload) != crc:
                raise _corrupt(path, what)
            try:
                body = decompressor.decompress(payload, max_output_size=expected)
            except zstandard.ZstdError:
                raise _corrupt(path, what) from None
            if len(body) != expected:
                raise _corrupt(path, what)
            arrays, offset = [], 0
            for size, dtype in zip(sizes, ("<f4", "<f4", "<f4", "<f4", code_dtype)):
                arrays.append(np.frombuffer(body, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=offset))
                offset += size
            shift, scale, low, high, codes = arrays
            q = QuantisedLatents(codes.reshape(count, depth, side, side), low, high, header.bits)
            yield EncodedFrame(header.frame_shape, header.tile, shift.astype(np.float32), scale.astype(np.float32),
                               dequantise(q))
        tail = _read_exact(handle, len(TRAILER) + _U32.size, path, "its end marker")
        if tail[: len(TRAILER)] != TRAILER or _U32.unpack(tail[len(TRAILER):])[0] != total:
            raise _corrupt(path, "its end marker")
        if handle.read(1):
            raise EmzError(f"{path.name} has bytes after its end marker; it is damaged, copy it again or compress the original anew.")


def _corrupt(path: Path, what: str) -> EmzError:
    return EmzError(f"{path.name} is corrupt ({what} fails its checksum); copy the file again or compress the original anew.")
