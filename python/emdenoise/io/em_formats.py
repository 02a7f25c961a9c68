"""Electron-microscopy file formats: Gatan DM3/DM4, FEI/Thermo TIA (SER/EMI), Velox and
Berkeley EMD (RosettaSciIO) and SerialEM/IMOD MRC with its ``.mdoc`` sidecar (mrcfile).

Every reader returns the pixel array as stored (frames on the last two axes) and an
:class:`~emdenoise.io.metadata.ImageMetadata` with what the Poisson methods need: pixel size
and unit (spelled as ImageJ spells them), frame axes, exposure, and gain/offset/dose when the
file records them (seed 003 App. B and seed 001 sec. 3.1 model the data as counts, so these
facts decide how an image is turned into counts). Everything else the file says is kept,
flattened, in ``metadata.extra``.

RosettaSciIO and mrcfile are imported only when such a file is read, so the command line
starts fast and TIFF-only users need neither.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emdenoise.errors import InvalidInput, ResourceExhausted, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.read_errors import CorruptFile, InputNotFound, UnsupportedFormat

#: File extension (lower case) -> format name used in ``ImageMetadata.source_format``.
EM_EXTENSIONS: dict[str, str] = {
    ".dm3": "dm3",
    ".dm4": "dm4",
    ".ser": "ser",
    ".emi": "emi",
    ".emd": "emd",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".st": "mrc",
    ".ali": "mrc",
}

_DESCRIPTIONS = {  # format -> (what it is, with its article; software that re-exports it)
    "dm3": ("a Gatan DigitalMicrograph", "DigitalMicrograph"),
    "dm4": ("a Gatan DigitalMicrograph", "DigitalMicrograph"),
    "ser": ("an FEI/Thermo TIA series", "TIA"),
    "emi": ("an FEI/Thermo TIA", "TIA"),
    "emd": ("an EMD (Velox or Berkeley)", "Velox or the acquisition software"),
    "mrc": ("an MRC", "SerialEM/IMOD"),
}

_MAX_EXTRA_KEYS = 2000
_MAX_TEXT = 1000
_MAX_LIST = 16
# Branches of DigitalMicrograph files that describe windows and colour tables, not the data.
_SKIPPED_BRANCHES = ("DocumentObjectList", "CLUT", "Thumbnails", "PageSetup", "AnnotationGroupList")


def read_em(path: str | os.PathLike, *, kind: str | None = None,
            signal: int | str | None = None) -> tuple[np.ndarray, ImageMetadata]:
    """Read an electron-microscopy image or stack with its calibration.

    Parameters
    ----------
    path : path-like
        A ``.dm3``, ``.dm4``, ``.ser``, ``.emi``, ``.emd`` or ``.mrc`` (``.mrcs``, ``.st``,
        ``.ali``) file.
    kind : str, optional
        Format to read it as (a value of :data:`EM_EXTENSIONS`); by default taken from the
        extension. :func:`emdenoise.io.reader.read_image` passes what it found in the content.
    signal : int or str, optional
        Which dataset to read when the file holds several (EMI with BF and DF detectors,
        Velox DPC, DM workspaces): its index or title. By default the first real-valued image.

    Returns
    -------
    pixels : ndarray
        Native-endian array, frames on the last two axes (``YX``, ``TYX``, ``ZYX``...).
    metadata : ImageMetadata
        Pixel size and unit (``nm``, ``um``, ``A``, or ``pixel`` when uncalibrated), axes,
        exposure, frame interval, gain/offset/dose when recorded; ``extra`` holds the
        flattened original metadata (``original_metadata``), the titles of all datasets
        (``signals``), calibrations of the leading axes (``axis_calibrations``) and
        format-specific facts such as ``dwell_time`` (s per pixel, STEM) or ``mdoc``.

    Raises
    ------
    InputNotFound
        The file does not exist.
    UnsupportedFormat
        The extension is not one of :data:`EM_EXTENSIONS`.
    CorruptFile
        The reader could not parse the file.
    InvalidInput
        The file holds complex data (FFT, holography), RGB, or a spectrum rather than an image.

    Notes
    -----
    Gain is detector counts (pixel value) per electron and offset the pixel value at zero
    electrons, so ``electrons = (pixels - offset) / gain``: the counts model of seed 003
    App. B and the dose scaling of seed 001 sec. 3.1. Files rarely record them; see
    :mod:`emdenoise.noise.calibration` for estimating them from the data.
    """
    path = Path(path)
    _check_file(path)
    kind = kind or EM_EXTENSIONS.get(path.suffix.lower())
    if kind not in _DESCRIPTIONS:
        raise UnsupportedFormat(
            f"{path} has the unsupported extension '{path.suffix}'; "
            f"emdenoise reads {', '.join(sorted(EM_EXTENSIONS))} and .tif/.tiff files."
        )
    reader = _read_mrc if kind == "mrc" else _read_rsciio
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                pixels, meta = reader(path, kind, signal)
    except UserError:
        raise
    except MemoryError:
        raise ResourceExhausted(
            f"{path} is too large to load into memory; crop it or split the stack into smaller files."
        ) from None
    except Exception as error:  # any parser failure is a damaged or mislabelled file
        name, software = _DESCRIPTIONS[kind]
        raise CorruptFile(
            f"{path} could not be read as {name} file ({_short(error)}); check that it was "
            f"copied completely, or re-export it from {software}."
        ) from None
    return _checked_pixels(path, pixels), meta


def normalise_length_unit(scale: float | None, unit: Any) -> tuple[float | None, str]:
    """Spell a length unit as ImageJ does, converting units ImageJ does not know.

    Parameters
    ----------
    scale : float or None
        Size of one pixel in ``unit``.
    unit : str
        Unit as the file spells it (``"µm"``, ``"Å"``, ``"m"``, ``"1 / nm"``...).

    Returns
    -------
    scale, unit : float or None, str
        ``unit`` is ``"nm"``, ``"um"`` or ``"A"`` (reciprocal: ``"1/nm"``...), with ``m``,
        ``mm``, ``pm`` converted; ``(None, "pixel")`` for anything that is not a length.
    """
    text = str(unit or "").strip().replace(" ", "").replace("μ", "µ")
    if scale is None or not np.isfinite(scale) or scale <= 0:
        return None, "pixel"
    reciprocal = False
    for prefix in ("1/", "/"):
        if text.startswith(prefix):
            reciprocal, text = True, text[len(prefix):]
    if text.endswith("^-1") or text.endswith("⁻¹"):
        reciprocal, text = True, text.rsplit("^", 1)[0].rstrip("⁻¹")
    metres = _LENGTH_IN_METRES.get(text) or _LENGTH_IN_METRES.get(text.lower())
    if metres is None:
        return None, "pixel"
    if text in _IMAGEJ_SPELLING or text.lower() in _IMAGEJ_SPELLING:
        out_unit = _IMAGEJ_SPELLING.get(text) or _IMAGEJ_SPELLING[text.lower()]
        value = float(scale)
    else:  # m, mm, pm...: convert to the ImageJ unit that keeps the number readable
        size = float(scale) * metres if not reciprocal else float(scale) / metres
        if reciprocal:
            out_unit, value = "nm", size * 1e-9
        elif size >= 1e-6:
            out_unit, value = "um", size / 1e-6
        elif size >= 1e-10:
            out_unit, value = "nm", size / 1e-9
        else:
            out_unit, value = "A", size / 1e-10
    return value, ("1/" + out_unit if reciprocal else out_unit)


_LENGTH_IN_METRES = {
    "m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "microns": 1e-6,
    "nm": 1e-9, "A": 1e-10, "Å": 1e-10, "angstrom": 1e-10, "ang": 1e-10, "pm": 1e-12,
}
_IMAGEJ_SPELLING = {
    "nm": "nm", "um": "um", "µm": "um", "micron": "um", "microns": "um",
    "A": "A", "Å": "A", "angstrom": "A", "ang": "A",
}


# ----------------------------------------------------------------------------- checks


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputNotFound(f"input file {path} does not exist; check the path and its spelling.")
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder, not an image file; give the path of a file inside it.")
    if not os.access(path, os.R_OK):
        raise CorruptFile(f"{path} cannot be opened for reading; check its permissions.")
    if path.stat().st_size == 0:
        raise CorruptFile(f"{path} is empty (0 bytes); copy the file again from the microscope PC.")


def _checked_pixels(path: Path, pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.dtype.names is not None:
        raise InvalidInput(
            f"{path} holds an RGB colour image; electron micrographs are single-channel, so "
            "save the raw (grayscale) data instead."
        )
    if np.iscomplexobj(pixels):
        raise InvalidInput(
            f"{path} holds complex-valued data (an FFT, wave or hologram), not an intensity image; "
            "save its modulus or the raw micrograph instead."
        )
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8)
    if pixels.ndim < 2 or min(pixels.shape[-2:]) < 2:
        raise InvalidInput(
            f"{path} holds data of shape {pixels.shape}, not an image of at least 2x2 pixels; "
            "choose a file with a micrograph."
        )
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    if pixels.dtype in (np.uint32, np.int64, np.uint64, np.int8):
        # DigiScan writes uint32 counts; float64 holds every count below 2**53 exactly and is
        # a type the engine, the wire and ImageJ (as 32-bit) all take.
        pixels = pixels.astype(np.float64)
    return pixels


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text[:120] + ("..." if len(text) > 120 else "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ----------------------------------------------------------------------------- RosettaSciIO


def _rsciio_reader(kind: str) -> Callable:
    try:
        if kind in ("dm3", "dm4"):
            from rsciio.digitalmicrograph import file_reader
        elif kind in ("ser", "emi"):
            from rsciio.tia import file_reader
        else:
            from rsciio.emd import file_reader
    except ImportError:
        raise UserError(
            f"reading .{kind} files needs RosettaSciIO, which is not installed; "
            "install it with: pip install 'emdenoise[em]'"
        ) from None
    return file_reader


def _read_rsciio(path: Path, kind: str, signal: int | str | None) -> tuple[np.ndarray, ImageMetadata]:
    file_reader = _rsciio_reader(kind)
    source = path
    wanted_ser = None
    if kind == "ser":
        emi = _emi_for_ser(path)
        if emi is not None:  # the EMI beside a SER carries its acquisition metadata
            source, wanted_ser = emi, path.name
    with _quiet_rsciio():
        if kind == "emd":
            dictionaries = file_reader(str(source), select_type="images")
        else:
            dictionaries = file_reader(str(source))
    if not dictionaries and kind == "emi":
        raise CorruptFile(
            f"{path} refers to no readable .ser data; keep the .ser files that TIA saved with it "
            "in the same folder, or open a .ser file directly."
        )
    if not dictionaries:
        raise InvalidInput(f"{path} holds no image data; choose a file with a micrograph.")
    titles = [_title(d, i) for i, d in enumerate(dictionaries)]
    if wanted_ser is not None and signal is None:
        matching = [i for i, d in enumerate(dictionaries)
                    if d.get("metadata", {}).get("General", {}).get("original_filename") == wanted_ser]
        signal = matching[0] if matching else None
    index = _choose_signal(path, dictionaries, titles, signal)
    chosen = dictionaries[index]
    pixels = np.asarray(chosen["data"])
    if pixels.dtype.names is not None or np.iscomplexobj(pixels):
        return pixels, ImageMetadata(shape=pixels.shape, source_format=kind)  # refused by caller
    if not _is_image(chosen):
        raise _not_an_image(path, titles[index])
    meta = _metadata_from_axes(pixels, chosen.get("axes", []), kind)
    flat_original = _flatten(chosen.get("original_metadata", {}) or {})
    meta.extra["original_metadata"] = flat_original
    meta.extra["metadata"] = _flatten(chosen.get("metadata", {}) or {})
    meta.extra["signals"] = titles
    meta.extra["signal"] = titles[index]
    if kind in ("dm3", "dm4"):
        _dm_acquisition(meta, flat_original)
    elif kind in ("ser", "emi"):
        _tia_acquisition(meta, flat_original)
    else:
        _emd_acquisition(meta, flat_original)
        meta.source_format = "emd-velox" if any(k.startswith("BinaryResult.") for k in flat_original) \
            else "emd-berkeley"
    return pixels, meta


@contextmanager
def _quiet_rsciio():
    """RosettaSciIO logs warnings about partial metadata; emdenoise reports what it kept."""
    logger = logging.getLogger("rsciio")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _emi_for_ser(path: Path) -> Path | None:
    match = re.match(r"^(.*)_\d+$", path.stem)
    if not match:
        return None
    for suffix in (".emi", ".EMI"):
        candidate = path.with_name(match.group(1) + suffix)
        if candidate.is_file():
            return candidate
    return None


def _title(dictionary: dict, index: int) -> str:
    title = dictionary.get("metadata", {}).get("General", {}).get("title")
    return str(title) if title else f"dataset {index}"


def _is_image(dictionary: dict) -> bool:
    data = dictionary["data"]
    if data.ndim < 2 or data.dtype.names is not None or np.iscomplexobj(data):
        return False
    if min(data.shape[-2:]) < 2:
        return False
    axes = dictionary.get("axes", [])
    signal_axes = [a for a in axes if not a.get("navigate", False)]
    return len(signal_axes) >= 2 or not axes


def _choose_signal(path: Path, dictionaries: list[dict], titles: list[str],
                   signal: int | str | None) -> int:
    if signal is not None:
        if isinstance(signal, str) and signal in titles:
            return titles.index(signal)
        if isinstance(signal, int) and -len(dictionaries) <= signal < len(dictionaries):
            return signal % len(dictionaries)
        raise InvalidInput(
            f"{path} has no dataset {signal!r}; choose one of: {', '.join(titles)}."
        )
    for index, dictionary in enumerate(dictionaries):
        if _is_image(dictionary):
            return index
    for index, dictionary in enumerate(dictionaries):
        data = dictionary["data"]
        if data.ndim >= 2 and (data.dtype.names is not None or np.iscomplexobj(data)):
            return index  # complex or RGB: _checked_pixels explains what to do
    raise _not_an_image(path, ", ".join(titles))


def _not_an_image(path: Path, what: str) -> InvalidInput:
    return InvalidInput(
        f"{path} holds a spectrum or line profile ({what}), not an image; "
        "emdenoise restores images, so choose a micrograph file."
    )


def _metadata_from_axes(pixels: np.ndarray, axes: list[dict], kind: str) -> ImageMetadata:
    meta = ImageMetadata(shape=tuple(int(n) for n in pixels.shape), source_format=kind)
    ordered = sorted(axes, key=lambda a: a.get("index_in_array", 0)) if axes else []
    if len(ordered) != pixels.ndim:
        ordered = [{} for _ in range(pixels.ndim)]
    y_axis, x_axis = ordered[-2], ordered[-1]
    size_x, unit_x = normalise_length_unit(_float(x_axis.get("scale")), x_axis.get("units"))
    size_y, unit_y = normalise_length_unit(_float(y_axis.get("scale")), y_axis.get("units"))
    if size_x is not None and unit_x == unit_y:
        meta.pixel_size, meta.unit = size_x, unit_x
        if size_y is not None and not math.isclose(size_y, size_x, rel_tol=1e-6):
            meta.pixel_size_y = size_y
    leading = ordered[:-2]
    letters = []
    calibrations = []
    for axis in leading:
        scale = _float(axis.get("scale"))
        units = str(axis.get("units") or "").strip()
        _, length_unit = normalise_length_unit(scale or 1.0, units)
        letter = "Z" if length_unit in ("nm", "um", "A") else "T"
        letters.append(letter if letter not in letters else "Q")
        calibrations.append({
            "name": str(axis.get("name") or ""), "scale": scale, "offset": _float(axis.get("offset")),
            "units": units, "size": int(axis.get("size") or 0),
        })
    meta.axes = "".join(letters) + "YX"
    if calibrations:
        meta.extra["axis_calibrations"] = calibrations
        first = calibrations[0]
        if letters[0] == "T" and first["units"] == "s" and first["scale"]:
            meta.frame_interval = first["scale"]
        if len(leading) == 1 and first["units"] in ("deg", "°", "degree", "degrees") and first["scale"]:
            offset = first["offset"] or 0.0
            meta.slice_labels = [f"tilt {offset + i * first['scale']:g} deg" for i in range(pixels.shape[0])]
    return meta


def _dm_acquisition(meta: ImageMetadata, om: dict[str, Any]) -> None:
    """Exposure, STEM dwell time and an electron-calibrated intensity scale from DM tags."""
    tags = "ImageList.TagGroup0.ImageTags."
    exposure = _first_positive(om, [
        tags + "Acquisition.Parameters.High Level.Exposure (s)",
        tags + "DataBar.Exposure Time (s)",
        tags + "Acquisition.Parameters.Detector.exposure_s",
    ])
    if exposure is not None:
        meta.exposure = exposure
    dwell_us = _first_positive(om, [tags + "DigiScan.Sample Time"])
    if dwell_us is not None:
        meta.extra["dwell_time"] = dwell_us * 1e-6
    brightness = "ImageList.TagGroup0.ImageData.Calibrations.Brightness."
    units = str(om.get(brightness + "Units") or "").strip().lower()
    scale = _float(om.get(brightness + "Scale"))
    # An intensity calibration in electrons gives the gain; its origin is taken as the offset
    # only when it is 0, because DM versions differ on whether it is a raw or calibrated value.
    if units in ("e", "e-", "e⁻", "electron", "electrons") and scale and scale > 0:
        origin = _float(om.get(brightness + "Origin")) or 0.0
        meta.gain = 1.0 / scale
        meta.offset = 0.0 if origin == 0 else None
        meta.extra["intensity_calibration"] = {"scale": scale, "origin": origin, "units": units}


def _tia_acquisition(meta: ImageMetadata, om: dict[str, Any]) -> None:
    """TIA records one 'DwellTimePath': camera exposure in TEM, per-pixel dwell in STEM."""
    value = _first_positive(om, ["ObjectInfo.AcquireInfo.DwellTimePath"])
    mode = str(om.get("ObjectInfo.ExperimentalDescription.Mode", ""))
    if value is None:
        return
    if "STEM" in mode.upper():
        meta.extra["dwell_time"] = value
    else:
        meta.exposure = value


def _emd_acquisition(meta: ImageMetadata, om: dict[str, Any]) -> None:
    """Velox: exposure/dwell of the detector that made the image and its counts-to-electrons."""
    detector_name = str(om.get("BinaryResult.Detector", ""))
    prefix = None
    for key, value in om.items():
        if key.startswith("Detectors.") and key.endswith(".DetectorName") and str(value) == detector_name:
            prefix = key[: -len("DetectorName")]
            break
    if prefix is not None:
        exposure = _first_positive(om, [prefix + "ExposureTime"])
        if exposure is not None:
            meta.exposure = exposure
    dwell = _first_positive(om, ["Scan.DwellTime"])
    if dwell is not None:
        meta.extra["dwell_time"] = dwell
        frame_time = _first_positive(om, ["Scan.FrameTime"])
        if frame_time is not None and meta.exposure is None:
            meta.exposure = frame_time
    custom = f"CustomProperties.Detectors[{detector_name}]."
    electrons_per_count = _first_positive(om, [custom + "CountsToElectrons.value"])
    counts_per_value = _first_positive(om, [custom + "PixelValueToCameraCounts.value"]) or 1.0
    if electrons_per_count is not None:
        meta.gain = 1.0 / (electrons_per_count * counts_per_value)


# ----------------------------------------------------------------------------- MRC + mdoc


def _read_mrc(path: Path, kind: str, signal: int | str | None) -> tuple[np.ndarray, ImageMetadata]:
    try:
        import mrcfile
    except ImportError:
        raise UserError(
            "reading .mrc files needs mrcfile, which is not installed; install it with: pip install 'emdenoise[em]'"
        ) from None
    _check_mrc_header(path, mrcfile)
    with mrcfile.mmap(str(path), mode="r", permissive=True) as mrc:
        if mrc.data is None:
            raise CorruptFile(
                f"{path} is not a valid MRC file (its header or data block is damaged); "
                "check that it was copied completely."
            )
        pixels = np.array(mrc.data)
        header = mrc.header
        if mrc.is_volume_stack():
            axes = "TZYX"
        elif mrc.is_volume() and pixels.ndim == 3 and pixels.shape[0] > 1:
            axes = "ZYX"
        else:
            axes = "TYX" if pixels.ndim == 3 else "YX"
        meta = ImageMetadata(shape=tuple(int(n) for n in pixels.shape), axes=axes, source_format="mrc")
        voxel_x, voxel_y = float(mrc.voxel_size.x), float(mrc.voxel_size.y)
        if voxel_x > 0 and not (voxel_x == 1.0 and float(header.cella.x) == float(header.mx)):
            meta.pixel_size, meta.unit = voxel_x, "A"
            if voxel_y > 0 and not math.isclose(voxel_y, voxel_x, rel_tol=1e-6):
                meta.pixel_size_y = voxel_y
        meta.extra["mrc_header"] = {
            "mode": int(header.mode), "ispg": int(header.ispg), "exttyp": _text(header.exttyp),
            "nversion": int(header.nversion),
            "labels": [t for t in (_text(label).strip() for label in header.label[: int(header.nlabl)]) if t],
        }
        if _text(header.exttyp) in ("FEI1", "FEI2") and int(header.nsymbt) > 0:
            _fei_extended_header(meta, mrc.indexed_extended_header)
    mdoc = _mdoc_for(path)
    if mdoc is not None:
        _apply_mdoc(meta, _parse_mdoc(mdoc), n_frames=pixels.shape[0] if pixels.ndim == 3 else 1)
        meta.extra["mdoc_path"] = str(mdoc)
    return pixels, meta


_MRC_BYTES_PER_VALUE = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


def _check_mrc_header(path: Path, mrcfile) -> None:
    """Refuse damaged headers before mrcfile allocates what a random header declares."""
    with open(path, "rb") as handle:
        raw = handle.read(1024)
    size = path.stat().st_size
    if len(raw) < 1024:
        raise CorruptFile(f"{path} is shorter than an MRC header (1024 bytes); copy it again.")
    stamped = ">" if raw[212] == 0x11 else "<"  # machine stamp 0x11 0x11: big-endian
    problems = []
    for order in (stamped, "<" if stamped == ">" else ">"):
        header = np.frombuffer(raw, dtype=mrcfile.dtypes.HEADER_DTYPE.newbyteorder(order))[0]
        dims = [int(header[k]) for k in ("nx", "ny", "nz")]
        mode, extended = int(header["mode"]), int(header["nsymbt"])
        if (mode not in _MRC_BYTES_PER_VALUE and mode != 101) or min(dims) <= 0 or extended < 0:
            problems.append(
                f"{path} does not have a valid MRC header (mode {mode}, size {dims}); check that it "
                "is an MRC file and was copied completely."
            )
            continue
        values = dims[0] * dims[1] * dims[2]
        data_bytes = values * _MRC_BYTES_PER_VALUE[mode] if mode != 101 else (values + 1) // 2
        needed = 1024 + extended + data_bytes
        if needed <= size:
            return
        problems.append(
            f"{path} is truncated: its header declares {needed} bytes but the file has {size}; "
            "copy it again from the microscope PC."
        )
    raise CorruptFile(problems[0])


def _fei_extended_header(meta: ImageMetadata, table: np.ndarray) -> None:
    """Per-frame metadata Thermo Fisher (EPU, Velox) writes into the MRC extended header."""
    if table is None or len(table) == 0:
        return
    first = table[0]
    names = table.dtype.names or ()

    def value(name: str) -> float | None:
        if name not in names:
            return None
        number = _float(first[name])
        return number if number is not None and number > 0 else None

    exposure = value("Integration time") or value("Frame time")
    if exposure is not None:
        meta.exposure = exposure
    if value("Dwell time") is not None:
        meta.extra["dwell_time"] = value("Dwell time")
    pixel_m = value("Pixel size X")
    if meta.pixel_size is None and pixel_m is not None:
        meta.pixel_size, meta.unit = normalise_length_unit(pixel_m, "m")
    dose = value("Dose")  # electrons per square metre
    if dose is not None and pixel_m is not None:
        meta.dose = dose * pixel_m * (value("Pixel size Y") or pixel_m)
    meta.extra["fei_extended_header"] = {
        name: _plain(first[name]) for name in names if _plain(first[name]) is not None
    }


def _mdoc_for(path: Path) -> Path | None:
    for candidate in (path.with_name(path.name + ".mdoc"), path.with_suffix(".mdoc")):
        if candidate.is_file():
            return candidate
    return None


def _parse_mdoc(path: Path) -> dict[str, Any]:
    """SerialEM autodoc: ``key = value`` lines, ``[ZValue = n]`` sections, ``[T = ...]`` titles."""
    result: dict[str, Any] = {"global": {}, "frames": [], "titles": []}
    current = result["global"]
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        section = re.match(r"^\[\s*(\w+)\s*=\s*(.*?)\s*\]$", line)
        if section:
            name, value = section.groups()
            if name == "T":
                result["titles"].append(value)
            else:
                current = {"_section": f"{name} = {value}"}
                result["frames"].append(current)
            continue
        if "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return result


def _apply_mdoc(meta: ImageMetadata, mdoc: dict[str, Any], n_frames: int) -> None:
    frames = mdoc["frames"] or [mdoc["global"]]

    def first_number(key: str) -> float | None:
        for source in (frames[0], mdoc["global"]):
            if key in source:
                return _float(source[key].split()[0])
        return None

    spacing = first_number("PixelSpacing")  # Angstrom
    if spacing and spacing > 0:
        meta.pixel_size, meta.unit, meta.pixel_size_y = spacing, "A", None
    exposure = first_number("ExposureTime")
    if exposure and exposure > 0:
        meta.exposure = exposure
    dose = first_number("ExposureDose")  # electrons per square Angstrom
    if dose and dose > 0 and spacing:
        meta.dose = dose * spacing * spacing
    # CountsPerElectron describes the camera; a STEM detector channel has no such calibration.
    is_stem = "ChannelName" in frames[0] or any("STEM" in t.upper() for t in mdoc["titles"])
    counts_per_electron = first_number("CountsPerElectron")
    if counts_per_electron and counts_per_electron > 0 and not is_stem:
        divided = first_number("DividedBy2") == 1
        meta.gain = counts_per_electron / (2.0 if divided else 1.0)
    times = [_mdoc_time(frame.get("DateTime", "")) for frame in frames[:n_frames]]
    if len(times) >= 2 and all(times):
        steps = np.diff([t.timestamp() for t in times])
        if np.all(steps > 0):
            meta.frame_interval = float(np.median(steps))
    tilts = [_float(frame.get("TiltAngle")) for frame in frames[:n_frames]]
    if len(tilts) == n_frames > 1 and all(t is not None for t in tilts) and np.ptp(tilts) > 0.5:
        meta.slice_labels = [f"tilt {t:g} deg" for t in tilts]
    meta.extra["mdoc"] = mdoc


def _mdoc_time(text: str) -> datetime | None:
    text = " ".join(text.split())
    for pattern in ("%d-%b-%y %H:%M:%S", "%d-%b-%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


# ----------------------------------------------------------------------------- helpers


def _float(value: Any) -> float | None:
    try:
        number = float(np.asarray(value).ravel()[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def _first_positive(flat: dict[str, Any], keys: list[str]) -> float | None:
    for key in keys:
        number = _float(flat.get(key))
        if number is not None and number > 0:
            return number
    return None


def _text(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("latin-1").rstrip("\x00 ")
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return bytes(value.tobytes()).decode("latin-1").rstrip("\x00 ")
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a metadata value, or None when it is bulky or binary."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (str, bytes, np.bytes_, np.str_)):
        text = _text(value)
        return text[:_MAX_TEXT] if text.isprintable() or "\n" in text else None
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return _plain(_text(value))
    if isinstance(value, (list, tuple, np.ndarray)) and 0 < len(value) <= _MAX_LIST:
        items = [_plain(v) for v in value]
        return items if all(i is not None and not isinstance(i, list) for i in items) else None
    return None


def _flatten(tree: dict, prefix: str = "", out: dict | None = None) -> dict[str, Any]:
    """Dotted keys -> plain values, without display settings and bulky arrays."""
    out = {} if out is None else out
    for key, value in tree.items():
        if len(out) >= _MAX_EXTRA_KEYS:
            break
        if any(part in str(key) for part in _SKIPPED_BRANCHES):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out)
        else:
            plain = _plain(value)
            if plain is not None:
                out[name] = plain
    return out
