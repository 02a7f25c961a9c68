"""Is this stack a series Noise2Atom can train on? Checks and counts, without torch.

The server runs these before it starts a training worker, so a bad upload is refused at
once with one sentence naming the problem and the fix (ARCHITECTURE.md, "Wire"). Seed 004
trains on "experimental STEM images" of one field: a series of HAADF frames in which
atoms are bright peaks on a dark support, limited by shot noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from emdenoise.errors import InvalidInput

#: Fewest frames a series may have: 8 to sample crops from and 2 held out for CSS.
MIN_FRAMES = 10
#: Frames held out (one consecutive pair) to score CSS and the paired-frame error.
HELD_OUT = 2


@dataclass(frozen=True)
class SeriesCounts:
    """A checked series in counts (detected electrons per pixel) and how it got there.

    Attributes
    ----------
    counts : ndarray, float32, (T, Y, X)
    gain, offset : float
        ``counts = (raw - offset) / gain``.
    dose : float
        Mean counts per pixel per frame.
    source : str
        ``user`` when gain and offset were given, else how they were estimated.
    notes : tuple of str
    """

    counts: np.ndarray
    gain: float
    offset: float
    dose: float
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def held_out(self) -> tuple[int, int]:
        """The consecutive pair kept out of training (the middle of the series)."""
        first = len(self.counts) // 2 - 1
        return first, first + 1

    @property
    def training_indices(self) -> list[int]:
        held = set(self.held_out)
        return [t for t in range(len(self.counts)) if t not in held]


def stack_frames(frames: Sequence[np.ndarray], *, min_frames: int = MIN_FRAMES, min_side: int = 16) -> np.ndarray:
    """Stack 2-D frames into ``(T, Y, X)`` float64, refusing what training cannot use.

    Raises
    ------
    InvalidInput
        Fewer than ``min_frames`` frames, frames of different sizes, colour or 3-D frames,
        frames smaller than ``min_side``, or NaN/inf pixels.
    """
    frames = [np.asarray(f) for f in frames]
    if len(frames) < min_frames:
        raise InvalidInput(
            f"the series has {len(frames)} frame(s) but Noise2Atom training needs at least {min_frames} frames "
            "of the same field; record or load a longer series."
        )
    for index, frame in enumerate(frames):
        if frame.ndim != 2:
            raise InvalidInput(
                f"frame {index} has shape {frame.shape}, not a greyscale 2-D frame; convert the stack to "
                "single-channel frames (Image > Type > 32-bit)."
            )
    shapes = sorted({f.shape for f in frames})
    if len(shapes) > 1:
        bad = next(i for i, f in enumerate(frames) if f.shape != frames[0].shape)
        raise InvalidInput(
            f"frames of different sizes ({frames[0].shape[1]}x{frames[0].shape[0]} and "
            f"{frames[bad].shape[1]}x{frames[bad].shape[0]} at frame {bad}); crop or resample them to one size first."
        )
    if min(shapes[0]) < min_side:
        raise InvalidInput(f"frames of {shapes[0][1]}x{shapes[0][0]} px are too small; give frames of at least {min_side} px a side.")
    stack = np.stack(frames).astype(np.float64)
    if not np.isfinite(stack).all():
        raise InvalidInput("the series contains NaN or infinite pixels; replace them (Process > Math > Remove NaNs) first.")
    return stack


def series_counts(stack: np.ndarray, *, gain: float | None = None, offset: float | None = None) -> SeriesCounts:
    """Convert a stacked series to counts and check that it looks like a STEM count image.

    What is checked (each failure is one sentence saying what to look at):

    * the frames are not constant and the gain is positive;
    * after ``(raw - offset) / gain`` at most 1 % of the pixels are below -3 (counts are
      non-negative; a large negative tail means a wrong offset or data that are not counts,
      e.g. background-subtracted or normalised images);
    * the dose is between 0.005 and 10^4 counts per pixel (outside: gain or offset wrong);
    * the frames are bright peaks on a dark background (positive skewness of the
      smoothed mean frame), as in HAADF/ADF STEM; a negative skew means bright-field
      contrast (dark atoms), which seed 004's clean domain of bright Gaussian peaks
      does not describe.

    Parameters
    ----------
    stack : ndarray (T, Y, X)
    gain, offset : float, optional
        Detector reading per electron and at zero electrons; estimated from the
        mean-variance relation when not given (:func:`emdenoise.noise.calibration.estimate_counts`).
    """
    if float(stack.max()) == float(stack.min()):
        raise InvalidInput("the series is constant; it holds no image to learn from, load the recorded frames.")
    notes: list[str] = []
    if gain is not None and offset is not None:
        source = "user"
    else:
        from emdenoise.noise.calibration import estimate_counts

        try:
            fit = estimate_counts(stack, gain=gain, offset=offset)
        except InvalidInput as error:
            raise InvalidInput(
                f"cannot tell the detector gain and offset from this series ({error}); give --gain and --offset."
            ) from None
        gain, offset, source = fit.gain, fit.offset, fit.source
        notes += list(fit.notes)
    if not gain > 0:
        raise InvalidInput(f"the detector gain must be positive (got {gain:g}); give --gain in readings per electron.")
    counts = ((stack - offset) / gain).astype(np.float32)
    negative = float(np.mean(counts < -3.0))
    if negative > 0.01:
        raise InvalidInput(
            f"{100 * negative:.1f} % of the pixels are below -3 counts with gain {gain:.4g} and offset {offset:.6g}: "
            "this is not a STEM count image; check the offset (the detector reading with the beam blanked) "
            "and that the frames are raw, not background-subtracted or normalised."
        )
    dose = float(counts.mean())
    if not 0.005 <= dose <= 1e4:
        raise InvalidInput(
            f"the series averages {dose:.3g} counts per pixel with gain {gain:.4g} and offset {offset:.6g}, outside "
            "0.005 to 10000: check the gain and offset (or give them) so the frames are detected electrons per pixel."
        )
    skew = _bright_peak_skewness(counts)
    if skew < 0:
        raise InvalidInput(
            f"the frames show dark features on a bright background (skewness {skew:.2f}), not the bright atom peaks "
            "on a dark support that Noise2Atom maps to Gaussian peaks; train on an ADF/HAADF series of atoms or "
            "particles on a thin support, or invert a bright-field one (Edit > Invert) if its atoms should be peaks."
        )
    return SeriesCounts(counts=counts, gain=float(gain), offset=float(offset), dose=dose, source=source, notes=tuple(notes))


def _bright_peak_skewness(counts: np.ndarray) -> float:
    """Skewness of the mean frame after a 3 x 3 box filter (noise suppressed, peaks kept)."""
    from scipy.ndimage import uniform_filter

    mean = uniform_filter(counts.mean(axis=0).astype(np.float64), 3)
    centred = mean - mean.mean()
    sd = centred.std()
    return float(np.mean(centred**3) / sd**3) if sd > 0 else 0.0


def check_series(frames: Sequence[np.ndarray], *, gain: float | None = None, offset: float | None = None,
                 min_frames: int = MIN_FRAMES) -> SeriesCounts:
    """:func:`stack_frames` then :func:`series_counts`: the whole check of a training upload."""
    return series_counts(stack_frames(frames, min_frames=min_frames), gain=gain, offset=offset)


def read_series_file(path: str | Path) -> list[np.ndarray]:
    """All frames of a TIFF/EM stack, for training; TIFF pages of different sizes are refused, not skipped."""
    from emdenoise.workflow import open_frames

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist; give the path of the series (a TIFF or EM stack).")
    if path.suffix.lower() in (".tif", ".tiff"):
        _check_tiff_pages(path)
    frames, _metadata, _count = open_frames(path)
    return [np.asarray(frame) for frame in frames]


def _check_tiff_pages(path: Path) -> None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            shapes = [tuple(page.shape[:2]) for page in tif.pages]
    except Exception:  # unreadable files get open_frames' message
        return
    for index, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise InvalidInput(
                f"frames of different sizes in {path.name} ({shapes[0][1]}x{shapes[0][0]} and {shape[1]}x{shape[0]} "
                f"at frame {index}); crop or resample them to one size first."
            )
