"""What the engine accepts as a frame, with a one-sentence reason when it does not."""

from __future__ import annotations

import numpy as np

from emdenoise.errors import InvalidInput, ResourceExhausted

ACCEPTED_DTYPES = ("uint8", "uint16", "int16", "int32", "float32", "float64")


def check_dtype(dtype: np.dtype | str) -> np.dtype:
    """Return ``dtype`` if frames of it are accepted, else raise :class:`InvalidInput`."""
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):
        raise InvalidInput(f"pixel type {dtype!r} is not a known type; use one of {', '.join(ACCEPTED_DTYPES)}.") from None
    if dtype.kind == "c":
        raise InvalidInput(
            f"complex pixels ({dtype}) are not supported; denoise the amplitude or intensity image instead."
        )
    if dtype.name not in ACCEPTED_DTYPES:
        raise InvalidInput(
            f"pixel type {dtype} is not supported; convert to one of {', '.join(ACCEPTED_DTYPES)} "
            "(ImageJ: Image > Type > 32-bit)."
        )
    return dtype


#: Integer pixel types whose every value float32 holds exactly.
EXACT_IN_FLOAT32 = ("uint8", "uint16", "int8", "int16")


def as_frame(frame: np.ndarray, *, index: int | None = None, exact_integers: bool = False) -> np.ndarray:
    """Validate one 2-D frame and return it as float32.

    ``exact_integers``: return uint8/uint16/int16 frames as they are (float32 holds each of
    their values exactly, so a caller that converts them later, as the engine's normalisation
    does while writing the padded frame, gets the same numbers without this conversion's pass).

    Raises :class:`InvalidInput` for wrong dimensionality, RGB, frames smaller than 2x2 and
    NaN/Inf pixels.
    """
    where = f"frame {index}" if index is not None else "the frame"
    frame = np.asarray(frame)
    check_dtype(frame.dtype)
    if frame.ndim == 3 and frame.shape[-1] in (3, 4):
        raise InvalidInput(f"{where} looks like an RGB image {frame.shape}; convert it to 32-bit grayscale first.")
    if frame.ndim != 2:
        raise InvalidInput(f"{where} has {frame.ndim} dimensions {frame.shape}; a frame must be 2-D (height, width).")
    if min(frame.shape) < 2:
        raise InvalidInput(f"{where} is {frame.shape[0]}x{frame.shape[1]} pixels; frames need at least 2x2 pixels.")
    if exact_integers and frame.dtype.name in EXACT_IN_FLOAT32:
        return frame
    integers = frame.dtype.kind in "ui"  # every integer pixel is finite in float32 (no check needed)
    frame = frame.astype(np.float32, copy=False)
    if not integers and not np.isfinite(frame).all():
        bad = int(frame.size - np.count_nonzero(np.isfinite(frame)))
        raise InvalidInput(
            f"{where} contains {bad} NaN or infinite pixels; replace them (e.g. ImageJ: Process > Math > Remove NaNs) first."
        )
    return frame


def as_frames(image: np.ndarray) -> np.ndarray:
    """View an N-D image (frames on the last two axes) as a (T, H, W) stack."""
    image = np.asarray(image)
    check_dtype(image.dtype)
    if image.ndim < 2:
        raise InvalidInput(f"an image needs at least 2 dimensions, got shape {image.shape}.")
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.shape[0] > 4:
        raise InvalidInput(f"shape {image.shape} looks like an RGB image; convert it to 32-bit grayscale first.")
    height, width = image.shape[-2:]
    if min(height, width) < 2:
        raise InvalidInput(f"frames of {height}x{width} pixels are too small; frames need at least 2x2 pixels.")
    count = int(np.prod(image.shape[:-2], dtype=np.int64))
    if count == 0:
        raise InvalidInput("the stack is empty; it holds no frames.")
    return image.reshape((count, height, width))


# Detector gains are counts per electron: well inside this range for every camera; a value
# outside it is a typo (or 0/NaN from a form) that would turn counts into inf or all-NaN.
GAIN_RANGE = (1e-6, 1e6)
MAX_TILE = 1 << 16
# Largest frame (float32) a file may declare or one request may announce (the wire uses it
# too); an 8k x 8k float32 frame is 256 MiB.
MAX_FRAME_BYTES = 512 << 20


def check_job_options(
    *, gain: float | None = None, offset: float | None = None, tile_size: int | None = None
) -> dict[str, float | int | None]:
    """Check the gain, offset and tile size of a job; one rule for CLI, server and engine.

    Parameters
    ----------
    gain : float, optional
        Detector counts per electron; None: not given (estimated, or 1 for the engine).
    offset : float, optional
        Detector reading at zero electrons; None: not given.
    tile_size : int, optional
        Largest core tile side; None or 0: the model card's.

    Returns
    -------
    dict
        ``gain``, ``offset`` (floats or None) and ``tile_size`` (int or None).

    Raises
    ------
    InvalidInput
        A gain that is not a finite number in ``GAIN_RANGE``, an offset that is not finite,
        a tile size that is not a whole number from 1 to ``MAX_TILE``.
    """
    if gain is not None:
        gain = _finite(gain, "the gain")
        low, high = GAIN_RANGE
        if not low <= gain <= high:
            raise InvalidInput(
                f"the gain {gain:g} is not usable; give the detector's counts per electron, between {low:g} and "
                f"{high:g}, or leave it out to have it estimated."
            )
    if offset is not None:
        offset = _finite(offset, "the offset")
    if tile_size is not None and tile_size != 0:
        tile_size = _tile_size(tile_size)
    return {"gain": gain, "offset": offset, "tile_size": tile_size or None}


def _finite(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} {value!r} is not a number; give a number or leave it out.") from None
    if not np.isfinite(number):
        raise InvalidInput(f"{what} is {number}; give a finite number or leave it out.")
    return number


def _tile_size(value) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"the tile size {value!r} is not a whole number; give one from 1 to {MAX_TILE}.") from None
    if size != value or not 1 <= size <= MAX_TILE:
        raise InvalidInput(f"the tile size {value} is out of range; give a whole number from 1 to {MAX_TILE}.")
    return size


def check_frame_size(height: int, width: int, *, where: str) -> None:
    """Refuse a declared frame whose float32 pixels exceed ``MAX_FRAME_BYTES``, before allocating it.

    ``where`` names the file (or stream) for the message.
    """
    needed = int(height) * int(width) * 4
    if needed > MAX_FRAME_BYTES:
        raise ResourceExhausted(
            f"{where} declares {height}x{width}-pixel frames ({needed / 2**30:.1f} GiB each as 32-bit), more than "
            f"the {MAX_FRAME_BYTES >> 20} MiB one frame may take; crop or bin the image, or the file is damaged."
        )
