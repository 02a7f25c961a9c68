"""ImagePlus <-> numpy in a Python-hosted ImageJ (scyjava/JPype), metadata included.

The Python side of emdenoise works on 2-D frames plus an :class:`ImageMetadata`; ImageJ
holds an ``ij.ImagePlus``. These functions move between the two without files
(ARCHITECTURE.md, "Fiji side"): pixels are copied through JPype's buffer support, and
calibration (pixel size, unit, z spacing, frame interval), slice labels, hyperstack
dimensions and the Info property travel with them.

Frame order is ImageJ's stack order, channels fastest, then slices, then frames, which
is the C-order flattening of a ``TZCYX`` array: a hyperstack read here and a TIFF read
by :func:`emdenoise.io.tiff.iter_tiff_frames` give the same frames in the same order.

A JVM with ImageJ1 (``ij.jar``) on its class path must be running; see
:mod:`emdenoise.fiji.launch`.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

from emdenoise.errors import InvalidInput
from emdenoise.io.metadata import ImageMetadata

#: ImageJ's bit depths this module moves, and the numpy dtype of each.
DTYPE_OF_BITDEPTH = {8: np.uint8, 16: np.uint16, 32: np.float32}

_UNITS = {"micron": "um", "µm": "um", "\u00b5m": "um", "microns": "um", "Å": "A", "angstrom": "A", "": "pixel"}
_SECONDS_PER = {"sec": 1.0, "s": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
                "min": 60.0, "minute": 60.0, "minutes": 60.0, "hour": 3600.0, "h": 3600.0,
                "us": 1e-6, "µs": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9}


def _ij(name: str):
    from jpype import JClass

    return JClass(name)


def base_name(title: str) -> str:
    """An image title without its ``.tif``/``.tiff`` or EM-format ending (as the EM macros do)."""
    lower = title.lower()
    for suffix in (".tiff", ".tif", ".dm3", ".dm4", ".ser", ".emi", ".emd", ".mrcs", ".mrc", ".st", ".ali"):
        if lower.endswith(suffix):
            return title[: -len(suffix)]
    return title


def check_greyscale(imp) -> None:
    """Refuse what emdenoise cannot take: no image, RGB, an empty stack."""
    if imp is None:
        raise InvalidInput("no image is open (an empty stack); open a micrograph or a stack first.")
    if int(imp.getBitDepth()) not in DTYPE_OF_BITDEPTH:
        raise InvalidInput(
            f"'{imp.getTitle()}' is an RGB image; electron micrographs are single-channel, "
            "so convert it with Image > Type > 32-bit first."
        )
    if int(imp.getStackSize()) == 0:
        raise InvalidInput(f"'{imp.getTitle()}' holds no frames; there is nothing to denoise.")


def frame_of_processor(ip, *, signed16: bool = False) -> np.ndarray:
    """The pixels of one ``ImageProcessor`` as a 2-D numpy array (a copy).

    8-bit gives uint8 and 16-bit uint16 (ImageJ keeps them in signed Java arrays), 32-bit
    float32; with ``signed16`` a 16-bit image calibrated as signed (ImageJ's ``-32768``
    offset for int16 files) gives the int16 values the file held.
    """
    width, height = int(ip.getWidth()), int(ip.getHeight())
    pixels = np.asarray(ip.getPixels())
    if pixels.dtype == np.int8:
        pixels = pixels.view(np.uint8)
    elif pixels.dtype == np.int16:
        pixels = pixels.view(np.uint16)
        if signed16:
            pixels = (pixels ^ np.uint16(0x8000)).view(np.int16)
    elif pixels.dtype != np.float32:
        raise InvalidInput(f"ImageJ pixels of type {pixels.dtype} are not greyscale; convert the image to 32-bit first.")
    return pixels.reshape(height, width)


def iter_frames(imp) -> Iterator[np.ndarray]:
    """Yield the frames of ``imp`` one at a time in stack order (virtual stacks load lazily)."""
    check_greyscale(imp)
    signed16 = bool(imp.getCalibration().isSigned16Bit())
    stack = imp.getStack()
    for index in range(1, int(stack.getSize()) + 1):
        yield frame_of_processor(stack.getProcessor(index), signed16=signed16)


def dimensions(imp) -> tuple[int, int, int]:
    """``(channels, slices, frames)`` of ``imp`` (1 where a dimension is absent)."""
    return int(imp.getNChannels()), int(imp.getNSlices()), int(imp.getNFrames())


def metadata_of(imp) -> ImageMetadata:
    """Calibration, labels, dimensions and Info of ``imp`` as an :class:`ImageMetadata`.

    Parameters
    ----------
    imp : ij.ImagePlus
        A greyscale image or (hyper)stack.

    Returns
    -------
    ImageMetadata
        ``axes``/``shape`` list the dimensions larger than one in ``TZCYX`` order, so a
        hyperstack and the TIFF ImageJ saves of it describe themselves alike.
    """
    check_greyscale(imp)
    channels, slices, frames = dimensions(imp)
    height, width = int(imp.getHeight()), int(imp.getWidth())
    axes, shape = "", []
    for axis, size in (("T", frames), ("Z", slices), ("C", channels)):
        if size > 1:
            axes += axis
            shape.append(size)
    if channels * slices * frames != int(imp.getStackSize()):  # dimensions not set: a plain stack
        axes, shape = ("Z", [int(imp.getStackSize())]) if imp.getStackSize() > 1 else ("", [])
    meta = ImageMetadata(axes=axes + "YX", shape=(*shape, height, width), source_format="imagej")
    cal = imp.getCalibration()
    unit = str(cal.getUnit() or "pixel")
    meta.unit = _UNITS.get(unit, unit)
    if meta.unit != "pixel" or float(cal.pixelWidth) != 1.0:  # as read_tiff_metadata reads the TIFF
        meta.pixel_size = float(cal.pixelWidth)
        if not math.isclose(float(cal.pixelHeight), float(cal.pixelWidth), rel_tol=1e-6):
            meta.pixel_size_y = float(cal.pixelHeight)
        if slices > 1 and float(cal.pixelDepth) != 1.0:
            meta.extra["imagej"] = {"spacing": float(cal.pixelDepth)}
    interval = float(cal.frameInterval)
    if interval > 0:
        meta.frame_interval = interval * _SECONDS_PER.get(str(cal.getTimeUnit()), 1.0)
    stack = imp.getStack()
    if int(stack.getSize()) == 1:
        # a single image's stack label is made up of its title and Info; its own label is here
        labels = [imp.getProp("Slice_Label")]
    else:
        labels = [stack.getSliceLabel(i) for i in range(1, int(stack.getSize()) + 1)]
    if any(label is not None and str(label) != "" for label in labels):
        meta.slice_labels = ["" if label is None else str(label) for label in labels]
    info = imp.getInfoProperty()
    meta.info = "" if info is None else str(info)
    return meta


def to_numpy(imp) -> tuple[np.ndarray, ImageMetadata]:
    """All pixels of ``imp`` shaped as ``metadata.shape`` (e.g. ``(T, Z, Y, X)``), and its metadata."""
    meta = metadata_of(imp)
    frames = list(iter_frames(imp))
    return np.stack(frames).reshape(meta.shape), meta


def processor_of(frame: np.ndarray):
    """A new ``ImageProcessor`` holding a copy of a 2-D array.

    uint8 -> ByteProcessor, uint16 -> ShortProcessor, everything else -> FloatProcessor
    (float32), as ImageJ would type the same TIFF.
    """
    from jpype import JArray, JByte, JFloat, JShort

    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise InvalidInput(f"an ImageJ frame must be 2-D, not shape {frame.shape}.")
    height, width = frame.shape
    if frame.dtype == np.uint8:
        pixels = JArray(JByte)(np.ascontiguousarray(frame).reshape(-1).view(np.int8))
        return _ij("ij.process.ByteProcessor")(width, height, pixels)
    if frame.dtype == np.uint16:
        pixels = JArray(JShort)(np.ascontiguousarray(frame).reshape(-1).view(np.int16))
        return _ij("ij.process.ShortProcessor")(width, height, pixels, None)
    pixels = JArray(JFloat)(np.ascontiguousarray(frame, dtype=np.float32).reshape(-1))
    return _ij("ij.process.FloatProcessor")(width, height, pixels)


def _dimensions_from_metadata(meta: ImageMetadata, count: int) -> tuple[int, int, int]:
    sizes = {"C": 1, "Z": 1, "T": 1}
    axes = (meta.axes or "").upper()[:-2]
    shape = tuple(meta.shape)[:-2]
    if len(axes) == len(shape) and int(np.prod(shape, dtype=np.int64)) == count:
        for axis, size in zip(axes, shape):
            key = axis if axis in sizes else "Z"  # tifffile's Q/I (unknown) become slices
            sizes[key] *= int(size)
    elif count > 1:
        sizes["Z" if "Z" in axes else "T"] = count
    return sizes["C"], sizes["Z"], sizes["T"]


def to_imageplus(
    frames: Iterable[np.ndarray] | np.ndarray,
    metadata: ImageMetadata | None = None,
    *,
    title: str = "image",
    provenance: dict[str, str] | None = None,
    like=None,
):
    """Build an ``ij.ImagePlus`` from frames, with calibration, labels, dimensions and Info.

    Parameters
    ----------
    frames : iterable of 2-D arrays or ImageProcessors, or an array whose last two axes are Y, X
        Pixels in stack order; uint8 and uint16 stay 8- and 16-bit, anything else
        becomes 32-bit float; processors are used as they are.
    metadata : ImageMetadata, optional
        Calibration, slice labels, axes/shape and Info to restore.
    title : str
        Window title.
    provenance : dict, optional
        ``key -> value`` lines appended to Info as ``emdenoise.key = value`` (the lines
        ``emdenoise denoise`` writes into its TIFFs).
    like : ij.ImagePlus, optional
        Take dimensions and spatial/temporal calibration from this image instead
        (the input of a denoising job); its density calibration is dropped.

    Returns
    -------
    ij.ImagePlus
        Not shown; call ``show()`` to open a window.
    """
    from emdenoise.io.tiff import info_with_provenance  # the exact Info text the TIFF writer makes

    meta = metadata or ImageMetadata()
    if isinstance(frames, np.ndarray) and frames.ndim >= 2:
        frames = frames.reshape((-1,) + frames.shape[-2:])
    stack = None
    labels = list(meta.slice_labels)
    count = 0
    for frame in frames:
        ip = frame if hasattr(frame, "getPixels") else processor_of(frame)
        if stack is None:
            stack = _ij("ij.ImageStack")(int(ip.getWidth()), int(ip.getHeight()))
        label = labels[count] if count < len(labels) and labels[count] else None
        stack.addSlice(label, ip)
        count += 1
    if stack is None:
        raise InvalidInput("there were no frames to show; the stack is empty.")
    imp = _ij("ij.ImagePlus")(title, stack)
    if like is not None:
        channels, slices, nframes = dimensions(like)
        if channels * slices * nframes != count:
            channels, slices, nframes = 1, count, 1
        cal = like.getCalibration().copy()
        cal.disableDensityCalibration()
    else:
        channels, slices, nframes = _dimensions_from_metadata(meta, count)
        cal = _calibration_of(meta)
    imp.setDimensions(channels, slices, nframes)
    if channels > 1 or nframes > 1 or (like is not None and like.isHyperStack()):
        imp.setOpenAsHyperStack(True)
    imp.setCalibration(cal)
    info = info_with_provenance(meta.info, provenance or {})
    if info:
        imp.setProperty("Info", info)
    return imp


def _calibration_of(meta: ImageMetadata):
    cal = _ij("ij.measure.Calibration")()
    if meta.pixel_size:
        cal.pixelWidth = float(meta.pixel_size)
        cal.pixelHeight = float(meta.pixel_size_y or meta.pixel_size)
        spacing = (meta.extra.get("imagej") or {}).get("spacing")
        cal.pixelDepth = float(spacing) if spacing else float(meta.pixel_size)
        cal.setUnit(meta.unit)
    if meta.frame_interval:
        cal.frameInterval = float(meta.frame_interval)
        cal.setTimeUnit("sec")
    return cal
