"""Generated bad inputs for tests/test_fuzz.py: files and gRPC request streams, one seed each.

Every builder takes a :class:`numpy.random.Generator` seeded from the case's number, so a
case is reproducible from its seed alone (``make_file(kind, seed, folder)``).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile

from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import frame_to_chunks

FILE_KINDS = ("tiff", "tiff-bytes", "tiff-truncated", "tiff-patched", "tiff-pages", "emz", "em-bytes", "noise")
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float16", "float32", "float64",
          "complex64", "bool", "int64", "uint64")
EM_EXTENSIONS = (".dm3", ".dm4", ".mrc", ".mrcs", ".ser", ".emi", ".emd", ".st")
NASTY = (0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 1e300, 3.4e38, -3.4e38, 1.7e308, float("nan"), float("inf"),
         float("-inf"), 2.0**64, 5e-324)


def _pixels(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    kind = np.dtype(dtype).kind
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind in "iu":
        info = np.iinfo(dtype)
        if rng.random() < 0.3:  # extremes
            return rng.choice(np.array([info.min, info.max, 0], dtype=dtype), size=shape)
        return rng.integers(max(info.min, 0), min(info.max, 1000), size=shape, endpoint=True).astype(dtype)
    values = rng.gamma(3.0, 10.0, shape)
    if rng.random() < 0.3:  # NaN, inf, near the largest float
        spots = rng.random(shape) < 0.2
        values[spots] = rng.choice(np.array(NASTY[6:13]), size=int(spots.sum()))
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype)


def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    ndim = int(rng.choice([2, 3, 3, 3, 4, 5, 6]))
    side = lambda: int(rng.choice([1, 2, 3, 7, 16, 24, 33]))  # noqa: E731
    frames = [int(rng.integers(1, 4)) for _ in range(ndim - 2)]
    return (*frames, side(), side())


def valid_tiff(rng: np.random.Generator) -> bytes:
    """A small TIFF of a random dtype, shape and layout (ImageJ or plain, compressed, tiled, BigTIFF)."""
    import io

    dtype = str(rng.choice(DTYPES))
    shape = _shape(rng)
    data = _pixels(rng, dtype, shape)
    options: dict = {"photometric": "minisblack"}
    if rng.random() < 0.3:
        options["compression"] = "zlib"
    if rng.random() < 0.2 and shape[-1] >= 16 and shape[-2] >= 16:
        options["tile"] = (16, 16)
    if rng.random() < 0.2:
        options["bigtiff"] = True
    if dtype == "uint16" and "tile" not in options and "compression" not in options and rng.random() < 0.3:  # 12-bit packed, as some cameras write
        options["bitspersample"] = 12
        data = np.minimum(data, 4095)
    buffer = io.BytesIO()
    try:
        tifffile.imwrite(buffer, data, imagej=bool(rng.random() < 0.4) and "bigtiff" not in options, **options)
    except Exception:  # ImageJ refuses some dtypes and shapes: a plain TIFF then
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, data, **options)
    return buffer.getvalue()


def _flip_bytes(rng: np.random.Generator, data: bytes, *, head: int | None = None) -> bytes:
    out = bytearray(data)
    span = len(out) if head is None else min(len(out), head)
    for _ in range(int(rng.integers(1, 9))):
        at = int(rng.integers(0, max(span, 1)))
        if at < len(out):
            out[at] = int(rng.integers(0, 256))
    return bytes(out)


def _patched_tiff(rng: np.random.Generator) -> bytes:
    """A valid TIFF whose size, sample or strip tags of page 0 are rewritten to odd values."""
    import io

    raw = valid_tiff(rng)
    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        tags = [tag for tag in tif.pages.first.tags.values()
                if tag.name in ("ImageWidth", "ImageLength", "BitsPerSample", "SampleFormat", "SamplesPerPixel",
                                "StripByteCounts", "StripOffsets", "RowsPerStrip", "TileWidth", "TileLength",
                                "TileByteCounts", "Compression")]
        order = tif.byteorder
    out = bytearray(raw)
    for tag in rng.permutation(len(tags))[: int(rng.integers(1, 4))] if tags else []:
        tag = tags[int(tag)]
        code = {3: "H", 4: "I", 16: "Q"}.get(tag.dtype)
        if code is None or tag.count != 1:
            continue
        top = {"H": 2**16 - 1, "I": 2**32 - 1, "Q": 2**64 - 1}[code]
        value = int(rng.choice([0, 1, 2, 3, 5, 64, 65535, top, int(rng.integers(0, top, dtype=np.uint64))]))
        struct.pack_into(order + code, out, tag.valueoffset, min(value, top))
    return bytes(out)


def _pages_tiff(rng: np.random.Generator) -> bytes:
    """Pages of different sizes or dtypes in one file."""
    import io

    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for _ in range(int(rng.integers(2, 5))):
            dtype = str(rng.choice(("uint16", "float32", "uint8")))
            shape = (int(rng.integers(1, 20)), int(rng.integers(1, 20)))
            writer.write(_pixels(rng, dtype, shape), photometric="minisblack")
    return buffer.getvalue()


def _em_bytes(rng: np.random.Generator) -> tuple[bytes, str]:
    """Bytes that start like an EM format (or not at all), with an EM extension."""
    extension = str(rng.choice(EM_EXTENSIONS))
    body = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
    style = int(rng.integers(0, 5))
    if style == 0:  # DM3/DM4 version word
        head = struct.pack(">I", int(rng.choice([3, 4]))) + struct.pack(">I", int(rng.integers(0, 2**32)))
    elif style == 1:  # HDF5 signature
        head = b"\x89HDF\r\n\x1a\n" + bytes(16)
    elif style == 2:  # TIA series
        head = b"II\x97\x01" + struct.pack("<II", int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)))
    elif style == 3:  # MRC: nx, ny, nz, mode and the MAP stamp
        words = [int(rng.choice([0, 1, 4, 16, 2**31 - 1, int(rng.integers(0, 2**31))])) for _ in range(3)]
        header = bytearray(1024)
        struct.pack_into("<iiii", header, 0, *words, int(rng.choice([0, 1, 2, 4, 6, 12, 99])))
        header[208:212] = b"MAP "
        struct.pack_into("<i", header, 92, int(rng.choice([0, 0, 4096, 2**31 - 1])))  # extended header bytes
        head = bytes(header)
    else:
        head = b""
    return head + body, extension


def emz_variant(rng: np.random.Generator, valid: bytes) -> bytes:
    """A valid ``.emz`` (from ``emdenoise compress``) with its header's fields or bytes fuzzed."""
    from emdenoise.compress import emz

    start = len(emz.SIGNATURE)
    style = int(rng.integers(0, 4))
    if style == 0:
        return _flip_bytes(rng, valid)
    if style == 1:
        return valid[: int(rng.integers(0, len(valid)))]
    _, length = struct.unpack_from("<HI", valid, start)
    body = start + 6
    header = json.loads(valid[body : body + length])
    rest = valid[body + length + 4 :]
    odd = [0, -1, 1, 2**31, 2**63, 10**12, 1e308, "x", None, [], {}, "../../escaped", "/etc/passwd"]
    keys = [k for k in header if not isinstance(header[k], dict)]
    for _ in range(int(rng.integers(1, 4))):
        key = str(rng.choice(keys + ["tile", "model"]))
        if isinstance(header.get(key), dict) and header[key]:
            inner = str(rng.choice(list(header[key])))
            header[key][inner] = odd[int(rng.integers(0, len(odd)))]
        elif key == "frame_shape":
            header[key] = [odd[int(rng.integers(0, 7))] for _ in range(int(rng.integers(0, 4)))]
        else:
            header[key] = odd[int(rng.integers(0, len(odd)))]
    text = json.dumps(header, sort_keys=True).encode()
    crc = zlib.crc32(text) if style == 2 else int(rng.integers(0, 2**32))  # style 3: a wrong checksum too
    return valid[:start] + struct.pack("<HI", 1, len(text)) + text + struct.pack("<I", crc) + rest


def make_file(kind: str, seed: int, folder: Path, valid_emz: bytes) -> Path:
    """Write case ``seed`` of ``kind`` into ``folder``; returns its path."""
    rng = np.random.default_rng([seed, FILE_KINDS.index(kind)])
    extension = ".tif"
    if kind == "tiff":
        data = valid_tiff(rng)
    elif kind == "tiff-bytes":
        data = _flip_bytes(rng, valid_tiff(rng), head=int(rng.choice([16, 256, 10**9])))
    elif kind == "tiff-truncated":
        raw = valid_tiff(rng)
        data = raw[: int(rng.integers(0, len(raw)))]
    elif kind == "tiff-patched":
        data = _patched_tiff(rng)
    elif kind == "tiff-pages":
        data = _pages_tiff(rng)
    elif kind == "emz":
        data, extension = emz_variant(rng, valid_emz), ".emz"
    elif kind == "em-bytes":
        data, extension = _em_bytes(rng)
    else:
        data = rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes()
        extension = str(rng.choice([".tif", ".tiff", ".dm4", ".mrc"]))
    path = folder / f"case{extension}"
    path.write_bytes(data)
    return path


# -- gRPC --------------------------------------------------------------------------------------
RPC_KINDS = ("denoise-options", "denoise-chunks", "denoise-empty", "list-models", "likelihood", "encode",
             "decode", "training-ids", "start-training")
MODEL_IDS = ("", "ede-kernel-tem-3", "ede-kernel-stem-5", "classical-gaussian3", "nope", "../etc/passwd", "x" * 300,
             "ede-ae-d4", "\u00e9\u0000z")
WIRE_DTYPES = ("uint16", "float32", "float64", "uint8", "int32", "complex64", "bool", "object", "<U3", "nonsense", "",
               "V7", ">f4", "float16", "int64")


def _pick(rng: np.random.Generator, values: list[int]) -> int:
    """One of ``values`` as a Python int (``rng.choice`` would round the large ones through float64)."""
    return values[int(rng.integers(0, len(values)))]


def _nasty(rng: np.random.Generator) -> float:
    return float(rng.choice(np.array(NASTY))) if rng.random() < 0.7 else float(rng.normal(0, 1e3))


def _frame(rng: np.random.Generator) -> np.ndarray:
    dtype = str(rng.choice(("uint16", "float32", "uint8", "float64")))
    shape = (int(rng.choice([1, 2, 5, 16, 33])), int(rng.choice([1, 3, 16, 40])))
    return _pixels(rng, dtype, shape)


def _mutated_chunks(rng: np.random.Generator, frame: np.ndarray, index: int) -> list[pb.FrameChunk]:
    chunks = list(frame_to_chunks(frame, index, chunk_bytes=int(rng.choice([64, 1024, 4 << 20]))))
    for chunk in chunks:
        if rng.random() < 0.3 and chunk.HasField("header"):
            chunk.header.dtype = str(rng.choice(WIRE_DTYPES))
        if rng.random() < 0.2 and chunk.HasField("header"):
            del chunk.header.shape[:]
            chunk.header.shape.extend(_pick(rng, [0, 1, 7, 2**31, 2**63, 2**64 - 1]) for _ in range(rng.integers(0, 4)))
        if rng.random() < 0.15:
            chunk.data = chunk.data[: int(rng.integers(0, len(chunk.data) + 1))]
        if rng.random() < 0.1:
            chunk.chunk_count = int(rng.integers(0, 5))
        if rng.random() < 0.1:
            chunk.chunk_index = int(rng.integers(0, 5))
        if rng.random() < 0.1:
            chunk.frame_index = _pick(rng, [0, 1, 5, 2**63, 2**64 - 1])
    if rng.random() < 0.1:
        chunks = list(rng.permutation(np.array(chunks, dtype=object)))
    return chunks


def make_denoise_stream(kind: str, rng: np.random.Generator) -> tuple[list[pb.DenoiseRequest], int | None]:
    """A Denoise request stream and, when every part of it is well formed, the frames it sends."""
    if kind == "denoise-empty":
        return ([] if rng.random() < 0.5 else [pb.DenoiseRequest(options=pb.DenoiseOptions())]), None
    options = pb.DenoiseOptions(model_id=str(rng.choice(MODEL_IDS[:4])), modality=str(rng.choice(["", "tem", "stem", "any", "weird"])))
    if rng.random() < 0.6:
        options.gain = _nasty(rng)
    if rng.random() < 0.5:
        options.offset = _nasty(rng)
    if rng.random() < 0.5:
        options.tile_size = _pick(rng, [0, 1, 2, 3, 8, 15, 16, 17, 99999, 2**32 - 1])
    count = int(rng.integers(0, 3))
    options.frame_count = count if rng.random() < 0.7 else _pick(rng, [0, 1, 2**63, 2**64 - 1])
    requests = [pb.DenoiseRequest(options=options)]
    for index in range(count):
        frame = _frame(rng)
        if kind == "denoise-chunks":
            requests += [pb.DenoiseRequest(chunk=c) for c in _mutated_chunks(rng, frame, index)]
        else:
            requests += [pb.DenoiseRequest(chunk=c) for c in frame_to_chunks(frame, index)]
    if kind == "denoise-chunks" and rng.random() < 0.2:  # options again, mid-stream
        requests.insert(int(rng.integers(0, len(requests) + 1)), pb.DenoiseRequest(options=options))
    return requests, (count if kind == "denoise-options" else None)


def make_likelihood_stream(rng: np.random.Generator) -> list[pb.LikelihoodRequest]:
    options = pb.LikelihoodOptions(model_id=str(rng.choice(MODEL_IDS[:4])), polarity=str(rng.choice(["", "auto", "dark", "up"])),
                                   vacuum=str(rng.choice(["", "flat", "dark", "x"])), map_units=str(rng.choice(["", "total", "?"])))
    for name in ("gain", "offset", "vacuum_level", "min_sigma", "max_sigma", "threshold"):
        if rng.random() < 0.4:
            setattr(options, name, _nasty(rng))
    frame = rng.poisson(5, (int(rng.choice([1, 8, 24])), int(rng.choice([1, 8, 24])))).astype(np.uint16)
    requests = [pb.LikelihoodRequest(options=options)]
    requests += [pb.LikelihoodRequest(chunk=c) for c in _mutated_chunks(rng, frame, 0)]
    return requests


def make_encode_stream(rng: np.random.Generator) -> list[pb.EncodeRequest]:
    requests = [pb.EncodeRequest(options=pb.EncodeOptions(model_id=str(rng.choice(MODEL_IDS)),
                                                         frame_count=_pick(rng, [0, 1, 2**40, 2**64 - 1])))]
    frame = _frame(rng)
    requests += [pb.EncodeRequest(chunk=c) for c in _mutated_chunks(rng, frame, 0)]
    return requests


def make_decode_stream(rng: np.random.Generator) -> list[pb.DecodeRequest]:
    requests = [pb.DecodeRequest(options=pb.DecodeOptions(model_id=str(rng.choice(MODEL_IDS)),
                                                         encoder_sha256=str(rng.choice(["", "0" * 64, "zz"])),
                                                         frame_count=int(rng.choice([0, 1, 3]))))]
    height, width = int(rng.choice([0, 1, 20, 160, 161, 2**31])), int(rng.choice([0, 1, 20, 160, 2**31]))
    tiles = int(rng.integers(0, 3))
    requests.append(pb.DecodeRequest(frame=pb.LatentFrame(frame_index=0, height=height, width=width,
                                                          shift=[_nasty(rng) for _ in range(tiles)],
                                                          scale=[_nasty(rng) for _ in range(tiles)])))
    latents = rng.normal(0, 1, (int(rng.integers(1, 5)), int(rng.choice([1, 400])))).astype(np.float32)
    requests += [pb.DecodeRequest(chunk=c) for c in _mutated_chunks(rng, latents, 0)]
    return requests


def make_start_training(rng: np.random.Generator) -> list[pb.TrainSeriesRequest]:
    """Options naming a server path (the fuzz server has no data root: always refused)."""
    path = str(rng.choice(["/etc/passwd", "../../x.tif", "/nonexistent.tif", "relative.tif", "\u00e9.tif", "/" * 5]))
    options = pb.TrainSeriesOptions(model_id=str(rng.choice(["fuzz-a", "", "../bad", "x" * 200])), server_path=path,
                                    preset=str(rng.choice(["", "tiny", "nope"])), settings_json=str(rng.choice(["", "{", "[]", '{"steps": -1}'])))
    return [pb.TrainSeriesRequest(options=options)]
