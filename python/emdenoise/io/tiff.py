"""TIFF stacks in and out, ImageJ calibration and provenance preserved (tifffile).

Reading flattens any leading axes (T, Z, C of an ImageJ hyperstack) into a sequence of
2-D frames and remembers the original shape and axes in :class:`ImageMetadata`, so the
writer can restore the hyperstack. Writing streams frames one at a time: a stack is never
held whole by the writer.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tifffile

from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.metadata import ImageMetadata



def _pixel_size_from_resolution(page: tifffile.TiffPage) -> tuple[float | None, float | None]:
    """Pixel size (x, y) from the TIFF resolution tags, in resolution units."""
    sizes = []
    for tag_name in ("XResolution", "YResolution"):
        tag = page.tags.get(tag_name)
        if tag is None:
            sizes.append(None)
            continue
        numerator, denominator = tag.value
        sizes.append(denominator / numerator if numerator else None)
    return sizes[0], sizes[1]


def _unit_without_imagej(page: tifffile.TiffPage) -> str:
    tag = page.tags.get("ResolutionUnit")
    value = int(tag.value) if tag is not None else 1
    return {2: "inch", 3: "cm"}.get(value, "pixel")


def read_tiff_metadata(path: str | os.PathLike) -> ImageMetadata:
    """Read calibration, labels and axes of a TIFF without loading its pixels.

    Parameters
    ----------
    path : path-like
        TIFF file, ImageJ hyperstack or plain multi-page TIFF.

    Returns
    -------
    ImageMetadata
    """
    path = Path(path)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        page = tif.pages.first
        axes = series.axes.upper()
        meta = ImageMetadata(axes=axes, shape=tuple(series.shape), source_format="tiff")
        if page.photometric == tifffile.PHOTOMETRIC.RGB or "S" in axes:
            meta.extra["rgb"] = True
        pixel_x, pixel_y = _pixel_size_from_resolution(page)
        ij = tif.imagej_metadata or {}
        if ij:
            meta.unit = _normalise_unit(ij.get("unit", "pixel"))
            meta.frame_interval = _positive_or_none(ij.get("finterval"))
            labels = ij.get("Labels")
            if labels:
                meta.slice_labels = [str(label) for label in labels]
            meta.info = str(ij.get("Info", ""))
            meta.extra["imagej"] = {
                key: value
                for key, value in ij.items()
                if key not in {"Labels", "Info", "Ranges", "LUTs"} and _is_plain(value)
            }
        else:
            meta.unit = _unit_without_imagej(page)
        if pixel_x is not None and meta.unit != "pixel":
            meta.pixel_size = pixel_x
            if pixel_y is not None and not np.isclose(pixel_y, pixel_x, rtol=1e-6):
                meta.pixel_size_y = pixel_y
        elif pixel_x is not None and pixel_x != 1.0 and ij:
            meta.pixel_size = pixel_x
    return meta


def _normalise_unit(unit: str) -> str:
    unit = str(unit).strip()
    return {"micron": "um", "µm": "um", "\\u00B5m": "um", "Å": "A", "angstrom": "A"}.get(unit, unit)


def _positive_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _is_plain(value) -> bool:
    return isinstance(value, (str, int, float, bool))


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, ImageMetadata]:
    """Read a TIFF image or stack with its ImageJ calibration.

    Parameters
    ----------
    path : path-like
        The file to read.

    Returns
    -------
    pixels : ndarray
        The pixel array as stored (2-D frame, or N-D stack with frames last two axes).
    metadata : ImageMetadata
        Pixel size and unit, frame interval, slice labels, Info, axes and shape.

    Raises
    ------
    UserError
        When the file is missing or not a readable TIFF.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file {path} does not exist; check the path.")
    try:
        meta = read_tiff_metadata(path)
        pixels = tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError, OSError, KeyError, IndexError) as error:
        raise UserError(
            f"{path} is not a readable TIFF file ({error}); re-export it from the acquisition software."
        ) from None
    if meta.extra.get("rgb"):
        raise InvalidInput(
            f"{path} holds an RGB image; electron micrographs are single-channel, "
            "so convert it to 32-bit grayscale first (ImageJ: Image > Type > 32-bit)."
        )
    return pixels, meta


def iter_tiff_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the 2-D frames of a TIFF one at a time (pages are read lazily)."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        if "S" in series.axes.upper() or tif.pages.first.photometric == tifffile.PHOTOMETRIC.RGB:
            raise InvalidInput(f"{path} holds an RGB image; convert it to 32-bit grayscale first.")
        count = int(np.prod(series.shape[:-2], dtype=np.int64)) if len(series.shape) > 2 else 1
        if len(series.pages) == count and all(p is not None for p in series.pages[:1]):
            for index in range(count):
                yield series.pages[index].asarray()
        else:  # contiguous ImageJ stacks may expose one page for the whole series
            data = series.asarray(out="memmap") if series.dataoffset else series.asarray()
            for frame in data.reshape((-1,) + tuple(series.shape[-2:])):
                yield np.asarray(frame)


def frame_count(shape: tuple[int, ...]) -> int:
    """Number of 2-D frames in an array of ``shape`` (frames are the last two axes)."""
    if len(shape) < 2:
        return 0
    return int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1


def _imagej_axes(meta: ImageMetadata, count: int) -> tuple[tuple[int, ...], str]:
    """Shape prefix and axes string for writing ``count`` frames as ImageJ expects."""
    axes = meta.axes.upper() if meta.axes else "YX"
    shape = tuple(meta.shape)
    prefix_axes = axes[:-2]
    if shape and frame_count(shape) == count and all(a in "TZCQ" for a in prefix_axes):
        prefix_axes = prefix_axes.replace("Q", "Z")
        return tuple(shape[:-2]), prefix_axes
    if count == 1:
        return (), ""
    return (count,), "Z" if "Z" in axes else "T"


def write_tiff(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    metadata: ImageMetadata,
    *,
    provenance: dict[str, str] | None = None,
    overwrite: bool = False,
    frame_total: int | None = None,
) -> Path:
    """Write frames as an ImageJ TIFF (float32), keeping calibration and adding provenance.

    Parameters
    ----------
    path : path-like
        Output file. Written to a temporary name first and renamed when complete, so an
        interrupted run never leaves a truncated file under the final name.
    frames : iterable of ndarray
        2-D frames, written as they arrive.
    metadata : ImageMetadata
        Calibration, labels, axes/shape of the input (restored on output).
    provenance : dict, optional
        ``key -> value`` lines appended to ImageJ's Info as ``emdenoise.key = value``.
    overwrite : bool
        Replace an existing file; without it an existing file is an error.
    frame_total : int, optional
        Number of frames expected (defaults to the count implied by ``metadata.shape``).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it or choose another output.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output folder {parent} is not writable; choose another output.")
    total = frame_total if frame_total is not None else frame_count(metadata.shape) or None
    info = info_with_provenance(metadata.info, provenance or {})
    ij_metadata: dict = {"Info": info}
    unit = metadata.unit if metadata.pixel_size else "pixel"
    if unit != "pixel":
        ij_metadata["unit"] = unit
    if metadata.frame_interval:
        ij_metadata["finterval"] = float(metadata.frame_interval)
    resolution = None
    if metadata.pixel_size:
        pixel_y = metadata.pixel_size_y or metadata.pixel_size
        resolution = (1.0 / metadata.pixel_size, 1.0 / pixel_y)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise InvalidInput("there were no frames to write; the input stack is empty.")
    first = np.asarray(first, dtype=np.float32)
    count = total or 1
    prefix, prefix_axes = _imagej_axes(metadata, count)
    ij_metadata["axes"] = prefix_axes + "YX"
    if metadata.slice_labels and len(metadata.slice_labels) == count:
        ij_metadata["Labels"] = list(metadata.slice_labels)
    written = 0

    def counted():
        nonlocal written
        for frame in itertools.chain([first], frames):
            frame = np.asarray(frame, dtype=np.float32)
            if frame.shape != first.shape:
                raise InvalidInput(
                    f"frame {written} has shape {frame.shape} but the stack's frames are {first.shape}."
                )
            written += 1
            if written > count:
                raise InvalidInput(f"received more than the {count} frames expected.")
            yield frame

    temporary = path.with_name(f".{path.name}.partial")
    try:
        with tifffile.TiffWriter(temporary, imagej=True) as writer:
            writer.write(
                counted(),
                shape=prefix + first.shape,
                dtype=np.float32,
                resolution=resolution,
                metadata=ij_metadata,
            )
        if written != count:
            raise InvalidInput(f"expected {count} frames but received {written}; the job was cut short.")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def info_with_provenance(info: str, provenance: dict[str, str]) -> str:
    """ImageJ Info text: the input's ``info`` followed by ``emdenoise.key = value`` lines."""
    lines = [info.rstrip("\n")] if info.strip() else []
    lines += [f"emdenoise.{key} = {value}" for key, value in provenance.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def provenance_from_info(info: str) -> dict[str, str]:
    """Parse the ``emdenoise.key = value`` lines that :func:`write_tiff` appends to Info."""
    found = {}
    for line in info.splitlines():
        if line.startswith("emdenoise.") and " = " in line:
            key, value = line[len("emdenoise."):].split(" = ", 1)
            found[key.strip()] = value.strip()
    return found
