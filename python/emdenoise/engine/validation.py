"""What the engine accepts as a frame, with a one-sentence reason when it does not."""

from __future__ import annotations

import numpy as np

from emdenoise.errors import InvalidInput

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


def as_frame(frame: np.ndarray, *, index: int | None = None) -> np.ndarray:
    """Validate one 2-D frame and return it as float32.

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
    frame = frame.astype(np.float32, copy=False)
    if not np.isfinite(frame).all():
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
