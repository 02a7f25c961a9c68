"""TIFF stacks in and out, ImageJ calibration and provenance preserved (tifffile).

Reading flattens any leading axes (T, Z, C of an ImageJ hyperstack) into a sequence of
2-D frames and remembers the original shape and axes in :class:`ImageMetadata`, so the
writer can restore the hyperstack. Writing streams frames one at a time: a stack is never
held whole by the writer.
"""

from __future__ import annotations

import itertools
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tifffile

from emdenoise.errors import InvalidInput, ResourceExhausted, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.outputs import atomic_output, check_target
from emdenoise.io.read_errors import CorruptFile

# tifffile warns about damaged files on its logger; with no handler Python prints those
# lines to stderr before our one-sentence error. Applications that configure logging
# still receive them.
logging.getLogger("tifffile").addHandler(logging.NullHandler())


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

    The layout is checked as :func:`check_tiff_layout` does (its errors are raised here).

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
        series = check_tiff_layout(tif, path)
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
    """Yield the 2-D frames of a TIFF one at a time (pages are read lazily).

    The layout is checked first (:func:`check_tiff_layout`), and every failure to read a
    frame becomes one sentence naming the file.

    Raises
    ------
    CorruptFile
        The file is truncated or damaged, here or in the middle of the stack.
    InvalidInput, ResourceExhausted
        See :func:`check_tiff_layout`.
    """
    with _reading(path, "its header"):
        tif = tifffile.TiffFile(path)
    with tif:
        with _reading(path, "its header"):
            series = check_tiff_layout(tif, path)
        if "S" in series.axes.upper() or tif.pages.first.photometric == tifffile.PHOTOMETRIC.RGB:
            raise InvalidInput(f"{path} holds an RGB image; convert it to 32-bit grayscale first.")
        count = frame_count(series.shape)
        if len(series.pages) == count and all(p is not None for p in series.pages[:1]):
            for index in range(count):
                with _reading(path, f"frame {index} of {count}"):
                    frame = series.pages[index].asarray()
                yield frame
        else:  # contiguous ImageJ stacks may expose one page for the whole series
            with _reading(path, "its pixels"):
                data = series.asarray(out="memmap") if series.dataoffset else series.asarray()
            for index, frame in enumerate(data.reshape((-1,) + tuple(series.shape[-2:]))):
                with _reading(path, f"frame {index} of {count}"):
                    frame = np.array(frame)
                yield frame


@contextmanager
def _reading(path, what: str) -> Iterator[None]:
    """Turn whatever tifffile or the OS raise while reading ``what`` into one sentence."""
    try:
        yield
    except UserError:
        raise
    except MemoryError:
        raise ResourceExhausted(f"{path} is too large to read ({what}); crop it or split the stack into smaller files.") from None
    except OSError as error:
        raise CorruptFile(f"{path} cannot be read ({what}: {error.strerror or error}); check the file and its "
                          "permissions, or copy it again.") from None
    except Exception as error:  # tifffile and its codecs raise many kinds on damaged files
        raise CorruptFile(f"{path} is damaged ({what} cannot be read: {type(error).__name__}); copy it again "
                          "from the acquisition PC or re-save it from ImageJ.") from None


MAX_DIMENSIONS = 5  # ImageJ hyperstacks: T, Z, C and the frame's Y, X


def check_tiff_layout(tif: tifffile.TiffFile, path: str | os.PathLike) -> tifffile.TiffPageSeries:
    """Return the one image series of ``tif``, refusing layouts that would lose data silently.

    Checked before any pixel is read: one series only (pages of different sizes are not
    dropped), at most 5 dimensions, as many frames as an ImageJ header announces, pixel
    data that lie inside the file, and declared frame sizes that the file can hold
    (uncompressed data cannot be larger than the file) and memory allows.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    path : path-like
        For the messages.

    Returns
    -------
    tifffile.TiffPageSeries

    Raises
    ------
    CorruptFile
        Truncated or damaged: fewer frames than announced, data past the end of the file,
        or a declared image larger than the file could hold.
    InvalidInput
        Several images of different sizes, or more than 5 dimensions.
    ResourceExhausted
        Frames larger than :data:`emdenoise.engine.validation.MAX_FRAME_BYTES` as float32.
    """
    series = [s for s in tif.series if not _is_thumbnail(s)]
    if not series:
        raise CorruptFile(f"{path} holds no image data; copy it again from the acquisition PC.")
    if len(series) > 1:
        shapes = ", ".join("x".join(map(str, s.shape)) for s in series[:4])
        raise InvalidInput(f"{path} holds {len(series)} images of different sizes ({shapes}); emdenoise reads one "
                           "stack per file, so save each image as its own TIFF first.")
    first = series[0]
    if len(first.shape) > MAX_DIMENSIONS:
        raise InvalidInput(f"{path} holds a {len(first.shape)}-D image ({first.axes} {first.shape}); emdenoise reads at "
                           f"most {MAX_DIMENSIONS}-D hyperstacks (TZCYX), so reduce or reshape it first.")
    announced = (tif.imagej_metadata or {}).get("images")
    found = frame_count(first.shape)
    if announced is not None and int(announced) != found:
        raise CorruptFile(f"{path} is truncated or damaged: its ImageJ header announces {announced} frames but "
                          f"{found} can be read; copy the file again from the acquisition PC.")
    _check_extents(first, path, int(tif.filehandle.size))
    from emdenoise.engine.validation import check_frame_size  # the engine package loads ONNX Runtime

    height, width = first.shape[-2:]
    check_frame_size(height, width, where=str(path))
    return first


def _is_thumbnail(series: tifffile.TiffPageSeries) -> bool:
    page = series.pages[0] if series.pages else None
    return bool(getattr(page, "is_reduced", False))


def _check_extents(series: tifffile.TiffPageSeries, path, size: int) -> None:
    """Refuse pixel data that end past the file, or uncompressed frames larger than their data."""
    if series.dataoffset is not None:  # contiguous, uncompressed: one block for the whole series
        end = int(series.dataoffset) + _packed_bytes(series.pages[0], int(series.nbytes))
        if end > size:
            raise CorruptFile(f"{path} is truncated or damaged: its pixels need {end} bytes but the file has {size}; "
                              "copy it again from the acquisition PC.")
        return
    for index, page in enumerate(series.pages):
        if page is None:
            raise CorruptFile(f"{path} is damaged (page {index} cannot be found); copy it again from the acquisition PC.")
        offsets, counts = page.dataoffsets, page.databytecounts
        end = max((int(o) + int(c) for o, c in zip(offsets, counts)), default=0)
        stored = sum(int(c) for c in counts)
        uncompressed = getattr(page, "keyframe", page).compression == tifffile.COMPRESSION.NONE
        needed = _packed_bytes(page, int(page.nbytes))
        if end > size or (uncompressed and needed > stored):
            raise CorruptFile(f"{path} is truncated or damaged: page {index} declares {needed} bytes of pixels "
                              f"but {min(stored, max(size - min(offsets, default=0), 0))} are stored; copy it again "
                              "from the acquisition PC.")


def _packed_bytes(page, unpacked: int) -> int:
    """Bytes that ``unpacked`` bytes of pixels take in the file: fewer when samples have fewer
    bits than their dtype (1-bit bilevel pages, 12-bit packed data)."""
    keyframe = getattr(page, "keyframe", page)
    bits = int(getattr(keyframe, "bitspersample", 0) or 0)
    itembits = 8 * int(getattr(keyframe.dtype, "itemsize", 0) or 0)
    if not bits or not itembits or bits >= itembits:
        return unpacked
    return -(-unpacked * bits // itembits)


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
    prefix_axes = prefix_axes.replace("Q", "Z")
    in_imagej_order = prefix_axes == "".join(a for a in "TZC" if a in prefix_axes)  # also: no axis twice
    if shape and frame_count(shape) == count and in_imagej_order:
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
        Output file. Written to a temporary file of this call's own and renamed when
        complete, so an interrupted run never leaves a truncated file under the final name
        and two runs writing the same output do not collide.
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
    check_target(path, overwrite=overwrite)
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

    with atomic_output(path, overwrite=overwrite) as temporary:
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
