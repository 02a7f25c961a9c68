"""Image files to ``.emz`` files and back, through any client (CLI and Fiji share these).

Conventions of ARCHITECTURE.md: outputs never replace existing files without
``overwrite``, restored images are 32-bit ImageJ TIFFs named ``<stem>_denoised-<model>.tif``
with the calibration of the original and the provenance (model, graph sha256s, emdenoise
version) in ImageJ's Info.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from emdenoise.compress.emz import DEFAULT_LEVEL, SUFFIX, EmzWriter, iter_frames, make_header, read_header
from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.outputs import check_target, child_path, display_name
from emdenoise.io.tiff import write_tiff

_METADATA_FIELDS = ("pixel_size", "pixel_size_y", "unit", "frame_interval", "slice_labels", "axes", "shape", "info",
                    "exposure", "gain", "offset", "dose", "source_format")


@dataclass
class CompressionResult:
    """What :func:`compress_file` wrote."""

    path: Path
    frames: int
    pixels: int
    bytes: int
    source_bytes: int
    model_id: str

    @property
    def bytes_per_pixel(self) -> float:
        return self.bytes / self.pixels if self.pixels else float("nan")

    @property
    def ratio(self) -> float:
        """Uncompressed pixel bytes of the input over the file's bytes."""
        return self.source_bytes / self.bytes if self.bytes else float("nan")

    def summary(self) -> str:
        return (f"{self.path}: {self.frames} frame(s), {self.bytes} bytes, {self.bytes_per_pixel:.4f} bytes/pixel "
                f"({self.ratio:.1f}x smaller than the pixels), latents of {self.model_id}")


def metadata_to_dict(metadata: ImageMetadata) -> dict:
    """The JSON-safe part of an :class:`ImageMetadata` an ``.emz`` header records."""
    values = {name: getattr(metadata, name) for name in _METADATA_FIELDS}
    values["shape"] = [int(n) for n in metadata.shape]
    values["slice_labels"] = [str(label) for label in metadata.slice_labels]
    return values


def metadata_from_dict(values: dict) -> ImageMetadata:
    """Inverse of :func:`metadata_to_dict` (unknown keys are ignored)."""
    known = {name: values[name] for name in _METADATA_FIELDS if name in values and values[name] is not None}
    if "shape" in known:
        known["shape"] = tuple(int(n) for n in known["shape"])
    return ImageMetadata(**known)


def emz_path_for(input_path: Path, output: Path) -> Path:
    """``output`` itself when it ends in ``.emz``, else ``output/<stem>.emz`` (a plain name inside ``output``)."""
    if output.suffix.lower() == SUFFIX:
        return output
    return child_path(output, f"{input_path.stem}{SUFFIX}")


def restored_path_for(input_path: Path, output: Path, model_id: str) -> Path:
    """``output`` itself when it ends in ``.tif``/``.tiff``, else ``output/<stem>_denoised-<model>.tif``.

    A name that would leave ``output`` (a model id from a crafted header) is refused.
    """
    if output.suffix.lower() in (".tif", ".tiff"):
        return output
    return child_path(output, f"{input_path.stem}_denoised-{model_id}.tif")


def _prepare_target(path: Path, overwrite: bool) -> None:
    check_target(path, overwrite=overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output folder {path.parent} ({error.strerror}); choose another -o.") from None


def compress_file(
    client,
    input_path: Path,
    output_path: Path,
    *,
    model_id: str,
    bits: int = 8,
    level: int = DEFAULT_LEVEL,
    overwrite: bool = False,
    on_frame=None,
) -> CompressionResult:
    """Encode every frame of ``input_path`` with ``model_id`` and write an ``.emz`` file.

    Parameters
    ----------
    client : EmbeddedClient or RemoteClient
        Runs the encoder (seed 002, sec. 2).
    input_path : Path
        TIFF stack or EM file, any frame size.
    output_path : Path
        The ``.emz`` file to write.
    model_id : str
        An autoencoder (``emdenoise models``: task ``encode``).
    bits : {8, 16}
        Quantisation of the latents.
    level : int
        zstd level (1-22).
    overwrite : bool
        Replace an existing output.
    on_frame : callable, optional
        ``on_frame(done, total)`` after each frame is written.

    Returns
    -------
    CompressionResult
    """
    from emdenoise.workflow import open_frames

    output_path = Path(output_path)
    _prepare_target(output_path, overwrite)
    frames, metadata, count = open_frames(Path(input_path))
    if count == 0:
        raise UserError(f"{input_path} holds no frames; there is nothing to compress.")
    seen: dict = {}

    def watched() -> Iterator[np.ndarray]:
        for frame in frames:
            frame = np.asarray(frame)
            seen.setdefault("dtype", frame.dtype)
            seen["pixels"] = seen.get("pixels", 0) + frame.size
            seen["bytes"] = seen.get("bytes", 0) + frame.nbytes
            yield frame

    job = client.encode(watched(), model_id, frame_count=count)
    info = job.start()
    writer = None
    try:
        for index, encoded in enumerate(job):
            if writer is None:
                source = {"name": Path(input_path).name, "dtype": str(seen["dtype"]), "frame_count": count}
                header = make_header(info, frame_shape=encoded.shape, frame_count=count, bits=bits, level=level,
                                     source=source, metadata=metadata_to_dict(metadata))
                writer = EmzWriter(output_path, header, overwrite=overwrite)
            writer.write_frame(encoded)
            if on_frame is not None:
                on_frame(index + 1, count)
        if writer is None:
            raise InvalidInput(f"{input_path} gave no frames to compress; the file may be truncated.")
        path = writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        job.cancel()
        raise
    return CompressionResult(path, count, int(seen["pixels"]), path.stat().st_size, int(seen["bytes"]), info["model_id"])


def check_model(header, model_id: str | None, path: Path) -> str:
    """The model that decodes ``path``: the one that made it (another id is refused)."""
    if model_id and model_id != header.model_id:
        raise InvalidInput(
            f"{path.name} holds latents of {header.model_id}, which {model_id} cannot decode; "
            f"drop --model or pass --model {header.model_id}."
        )
    return header.model_id


def decode_latents(client, path: Path, *, model_id: str | None = None) -> tuple[Iterable[np.ndarray], dict, object]:
    """Start decoding the ``.emz`` file ``path``: ``(frames, job info, header)``."""
    header = read_header(path)
    model = check_model(header, model_id, path)
    job = client.decode(iter_frames(path), model, encoder_sha256=header.encoder_sha256, frame_count=header.frame_count)
    return job, job.start(), header


def decompress_file(
    client,
    input_path: Path,
    output_path: Path,
    *,
    model_id: str | None = None,
    overwrite: bool = False,
    on_frame=None,
) -> Path:
    """Decode an ``.emz`` file into a 32-bit ImageJ TIFF with the original's calibration.

    Parameters
    ----------
    client : EmbeddedClient or RemoteClient
        Runs the decoder (seed 002, sec. 2: restoration with a denoising effect).
    input_path : Path
        An ``.emz`` file from :func:`compress_file`.
    output_path : Path
        The TIFF to write.
    model_id : str, optional
        Must be the model that made the file when given.
    overwrite : bool
    on_frame : callable, optional

    Returns
    -------
    Path

    Raises
    ------
    InvalidInput
        A file from another model, a corrupt or truncated file (one sentence naming it).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    header = read_header(input_path)
    check_model(header, model_id, input_path)
    _prepare_target(output_path, overwrite)
    job, info, header = decode_latents(client, input_path, model_id=model_id)
    metadata = metadata_from_dict(header.metadata)
    total = header.frame_count
    source = header.source
    provenance = {
        "model": info["model_id"],
        "model_version": info.get("model_version", ""),
        "graph_sha256": info.get("graph_sha256", ""),
        "encoder_sha256": header.encoder_sha256,
        "version": info.get("emdenoise_version", ""),
        "device": info.get("device", ""),
        "source": display_name(input_path.name),
        "original": f"{source.get('name', '')} ({source.get('dtype', '')})",
        "compressed": f"seed 002 autoencoder latents, {header.bits}-bit, zstd ({input_path.stat().st_size} bytes)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }

    def reporting() -> Iterator[np.ndarray]:
        for done, frame in enumerate(job, 1):
            yield frame
            if on_frame is not None:
                on_frame(done, total)

    try:
        return write_tiff(output_path, reporting(), metadata, provenance=provenance, overwrite=overwrite, frame_total=total)
    except BaseException:
        job.cancel()
        raise
