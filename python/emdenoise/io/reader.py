"""One entry point for every image file emdenoise reads.

:func:`read_image` picks the reader from the file's content when its first bytes say what
it is (a TIFF renamed ``.dm4`` is still read as TIFF) and from its extension otherwise, and
turns every failure into a one-sentence :class:`~emdenoise.errors.UserError` that names the
file, the problem and the fix. The format modules never import this module back: the
errors they share with it live in :mod:`emdenoise.io.read_errors`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.read_errors import CorruptFile, InputNotFound, UnsupportedFormat  # re-exported

TIFF_EXTENSIONS = (".tif", ".tiff")


def supported_extensions() -> tuple[str, ...]:
    """Lower-case extensions :func:`read_image` accepts, TIFF first."""
    from emdenoise.io.em_formats import EM_EXTENSIONS

    return TIFF_EXTENSIONS + tuple(EM_EXTENSIONS)


def sniff_format(path: str | os.PathLike) -> str | None:
    """Name the format from a file's first bytes, or None when they do not say.

    Returns one of ``"tiff"``, ``"emd"`` (HDF5), ``"dm3"``, ``"dm4"``, ``"ser"``, ``"mrc"``.
    EMI files and MRC files without the ``MAP`` stamp are recognised by extension only.
    """
    with open(path, "rb") as handle:
        head = handle.read(224)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "emd"
    if head[:4] in (b"\x00\x00\x00\x03", b"\x00\x00\x00\x04") and len(head) >= 16:
        return "dm3" if head[3] == 3 else "dm4"
    if head[:4] == b"II\x97\x01":  # TIA: byte order 0x4949, series id 0x0197
        return "ser"
    if head[208:211] == b"MAP":
        return "mrc"
    return None


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageMetadata]:
    """Read a micrograph or stack from any supported file.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff`` (ImageJ or plain TIFF), ``.dm3``, ``.dm4``, ``.ser``, ``.emi``,
        ``.emd``, ``.mrc`` (``.mrcs``, ``.st``, ``.ali``).

    Returns
    -------
    pixels : ndarray
        Frames on the last two axes.
    metadata : ImageMetadata
        Calibration and acquisition facts; ``source_format`` names the reader used.

    Raises
    ------
    InputNotFound
        The path does not exist.
    UnsupportedFormat
        Neither the extension nor the content is a supported format.
    CorruptFile
        The file is empty, unreadable or damaged.
    InvalidInput
        The path is a folder, or the file holds complex, RGB or spectrum data.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFound(f"input file {path} does not exist; check the path and its spelling.")
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder, not an image file; give the path of a file inside it.")
    try:
        size = path.stat().st_size
        kind = sniff_format(path)
    except OSError as error:
        raise CorruptFile(f"{path} cannot be opened ({error.strerror or error}); check its permissions.") from None
    if size == 0:
        raise CorruptFile(f"{path} is empty (0 bytes); copy the file again from the microscope PC.")
    extension = path.suffix.lower()
    if kind is None:
        kind = "tiff" if extension in TIFF_EXTENSIONS else None
    if kind == "tiff":
        return _read_tiff(path)
    from emdenoise.io.em_formats import EM_EXTENSIONS, read_em

    by_extension = EM_EXTENSIONS.get(extension)
    if kind in ("dm3", "dm4") and by_extension in ("dm3", "dm4"):
        kind = by_extension
    if kind == "ser" and by_extension == "emi":
        kind = "emi"
    kind = kind or by_extension
    if kind is None:
        raise UnsupportedFormat(
            f"{path} is not in a supported format (extension '{path.suffix or 'none'}'); "
            f"emdenoise reads {', '.join(supported_extensions())}, so convert it to TIFF first."
        )
    return read_em(path, kind=kind)


def _read_tiff(path: Path) -> tuple[np.ndarray, ImageMetadata]:
    from emdenoise.io.tiff import read_tiff

    try:
        return read_tiff(path)
    except UserError as error:
        if isinstance(error, (InvalidInput, InputNotFound)):
            raise
        raise CorruptFile(str(error)) from None
    except MemoryError:
        from emdenoise.errors import ResourceExhausted

        raise ResourceExhausted(
            f"{path} is too large to load into memory; crop it or split the stack into smaller files."
        ) from None
    except Exception as error:  # tifffile and codecs raise many types on damaged files
        raise CorruptFile(
            f"{path} could not be read as a TIFF file ({type(error).__name__}); check that it was "
            "copied completely, or re-save it from ImageJ."
        ) from None


__all__ = [
    "TIFF_EXTENSIONS",
    "CorruptFile",
    "InputNotFound",
    "UnsupportedFormat",
    "read_image",
    "sniff_format",
    "supported_extensions",
]
