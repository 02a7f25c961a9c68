"""Detector gain, offset and dose from the data: the mean-variance relation of shot noise.

The Poisson methods work on counts. A detector reports ``pixel = offset + gain * n`` with
``n ~ Poisson(dose)`` electrons, so the noise variance grows linearly with the mean,
``var = gain * (mean - offset)``: seed 003 App. B verifies exactly this (pixel-wise mean and
variance over 40 frames fall on a line) and seed 001 sec. 3.1 models its low-dose data as
Poisson counts scaled by the dose. :func:`estimate_counts` fits that line:

* **two or more frames** of the same area (a pair or a series): the noise variance of every
  pixel comes from the frame-to-frame differences, ``sum (x[t+1] - x[t])**2 / (2 (N - 1))``
  (for a pair, ``(A - B)**2 / 2``), which cancels the specimen structure and slow drift;
* **one frame**: from the second difference across scan lines,
  ``(x[i-1] - 2 x[i] + x[i+1])**2 / 6``, which removes intensity gradients and, taken along
  y, is blind to the noise correlation along a STEM scan line.

The image is cut into blocks; each block gives a mean and a noise variance, the line is fitted
by weighted least squares, and blocks whose variance is off the line (edges, misregistered
structure, saturation) are rejected and the fit repeated. ``gain`` is then the
*noise-equivalent* gain: dividing ``pixel - offset`` by it gives counts whose variance equals
their mean, which is what a denoiser trained on Poisson noise expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from emdenoise.errors import InvalidInput
from emdenoise.io.metadata import ImageMetadata

_REJECT_SIGMAS = 4.0
_MAX_PIXELS_PER_FRAME = 2048 * 2048


@dataclass(frozen=True)
class CountsCalibration:
    """How pixel values map to electrons: ``electrons = (pixel - offset) / gain``.

    Attributes
    ----------
    gain : float
        Pixel value per electron (noise-equivalent: variance of ``(pixel - offset) / gain``
        equals its mean).
    offset : float
        Pixel value at zero electrons.
    dose : float
        Mean electrons per pixel per frame, ``(mean - offset) / gain``.
    source : str
        ``"user"``, ``"file"``, ``"estimated"``, or a mix such as ``"file+estimated"``.
    method : str
        Estimator used: ``"pair"``, ``"series"``, ``"single"``, or ``"given"``.
    quality : str
        ``"good"``, ``"fair"`` or ``"poor"``; see :attr:`notes` for why.
    gain_stderr, offset_stderr : float
        Standard errors of the fit (0 for values that were given).
    linearity : float
        RMS relative deviation of the binned variance from the fitted line (0.01 = 1 %).
    blocks_used : float
        Fraction of image blocks kept after rejecting outliers.
    noise_correlation_x, noise_correlation_y : float or None
        Lag-1 correlation of the noise along x (scan line) and y; None when not measurable.
    notes : tuple of str
        Sentences a microscopist can act on (correlated noise, poor leverage...).
    offset_determined : bool
        False when the image's intensity range was too narrow to fit the offset (a flat
        frame): the gain is then unreliable too.
    """

    gain: float
    offset: float
    dose: float
    source: str = "estimated"
    method: str = "given"
    quality: str = "good"
    gain_stderr: float = 0.0
    offset_stderr: float = 0.0
    linearity: float = 0.0
    blocks_used: float = 1.0
    noise_correlation_x: float | None = None
    noise_correlation_y: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    offset_determined: bool = True

    def to_counts(self, pixels: np.ndarray) -> np.ndarray:
        """Electrons per pixel, ``(pixels - offset) / gain``, as float32."""
        return ((np.asarray(pixels, dtype=np.float32) - np.float32(self.offset))
                / np.float32(self.gain))


def estimate_counts(frames: np.ndarray | Sequence[np.ndarray], *, gain: float | None = None,
                    offset: float | None = None, block: int | None = None,
                    max_frames: int = 8) -> CountsCalibration:
    """Estimate detector gain, offset and dose from the mean-variance relation.

    Parameters
    ----------
    frames : ndarray or sequence of ndarray
        One frame ``(Y, X)``, or frames of the same area ``(N, Y, X)`` (a pair or a series,
        consecutive in time). Leading axes beyond one are flattened.
    gain, offset : float, optional
        Known values to hold fixed; only the others are fitted. A known offset (e.g. 0 for
        a dark-subtracted counting camera) makes the gain estimate work on flat images too.
    block : int, optional
        Block side in pixels (default 16; 8 for images under 256 px, 4 under 64 px).
    max_frames : int
        Use at most this many consecutive frames (the first ones) of a series.

    Returns
    -------
    CountsCalibration

    Raises
    ------
    InvalidInput
        Too small, non-finite, constant, or noise-free data.

    Notes
    -----
    Implements the counts model of seed 003 App. B (variance linear in the mean, unit slope
    in counts) and seed 001 sec. 3.1 (Poisson noise at a dose in counts per pixel).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scene = np.linspace(5, 50, 256)[None, :] * np.ones((256, 1))
    >>> pair = 20.0 * rng.poisson(scene, size=(2, 256, 256)) + 100.0
    >>> result = estimate_counts(pair)
    >>> round(result.gain)
    20
    >>> bool(abs(result.dose - scene.mean()) < 0.03 * scene.mean())
    True
    """
    stack = _as_frames(frames, max_frames)
    n, height, width = stack.shape
    side = min(height, width)
    block = block or (16 if side >= 256 else 8 if side >= 64 else 4)
    if side < 4 * block:
        raise InvalidInput(
            f"the image is {height}x{width} pixels, too small to estimate the detector gain; "
            f"give --gain and --offset, or use a frame of at least {4 * block}x{4 * block} pixels."
        )
    means, variances, residual = _pixel_statistics(stack)
    block_mean, block_var = _blocks(means, block), _blocks(variances, block)
    if not np.any(block_var > 0):
        raise InvalidInput(
            "the frames show no noise (identical or constant pixels), so the detector gain "
            "cannot be estimated; give --gain and --offset."
        )
    if n == 1 and np.ptp(block_mean) == 0:
        raise InvalidInput(
            "the image is constant, so the detector gain cannot be estimated; give --gain and --offset."
        )
    slope, intercept, keep, slope_se, offset_se = _robust_line(block_mean, block_var, gain=gain, offset=offset)
    slope_se = 0.0 if gain is not None else slope_se
    if not slope > 0:
        raise InvalidInput(
            "the noise variance does not grow with the intensity, so these data do not follow "
            "a counting (Poisson) model; give --gain and --offset if you know them."
        )
    fitted_offset = offset if offset is not None else -intercept / slope
    fitted_gain = gain if gain is not None else slope
    linearity = _linearity(block_mean[keep], block_var[keep], slope, intercept)
    mean_level = float(stack.mean())
    dose = (mean_level - fitted_offset) / fitted_gain
    corr_x, corr_y = _noise_correlation(residual, keep, block, n)
    method = "single" if n == 1 else ("pair" if n == 2 else "series")
    determined = offset is not None or _offset_separable(offset_se, mean_level - fitted_offset, block_mean[keep])
    quality, notes = _judge(fitted_gain, slope_se, offset_se, mean_level, fitted_offset, dose,
                            linearity, keep.mean(), corr_x, block_mean[keep], offset)
    return CountsCalibration(
        gain=float(fitted_gain), offset=float(fitted_offset), dose=float(dose),
        source="estimated" if gain is None and offset is None else "given+estimated",
        method=method, quality=quality,
        gain_stderr=float(slope_se), offset_stderr=float(offset_se),
        linearity=float(linearity), blocks_used=float(keep.mean()),
        noise_correlation_x=corr_x, noise_correlation_y=corr_y, notes=tuple(notes),
        offset_determined=bool(determined),
    )


def resolve_counts(frames: np.ndarray | Sequence[np.ndarray], metadata: ImageMetadata | None = None,
                   *, gain: float | None = None, offset: float | None = None,
                   dose: float | None = None, assume_offset: float | None = None) -> CountsCalibration:
    """Gain, offset and dose to use: the user's values, else the file's, else estimated.

    Parameters
    ----------
    frames : ndarray or sequence of ndarray
        The image or series (see :func:`estimate_counts`).
    metadata : ImageMetadata, optional
        What the file recorded (``gain``, ``offset``, ``dose``).
    gain, offset, dose : float, optional
        The user's options; they win over the file. A dose (electrons per pixel) with a
        known or estimated offset fixes the gain as ``(mean - offset) / dose``.
    assume_offset : float, optional
        Offset to hold fixed when the full estimate is impossible (a flat frame, whose
        variance cannot separate gain from offset, or one too small for blocks); only the
        gain is then fitted, ``quality`` is ``"poor"`` and the first note says so. None:
        such frames raise :class:`InvalidInput`.

    Returns
    -------
    CountsCalibration
        ``source`` says where each value came from (``"assumed"`` for ``assume_offset``).

    Notes
    -----
    The conventions' counts rule (inputs carry an optional gain/offset or dose; when absent
    they are estimated from the mean-variance relation), after seed 003 App. B.
    """
    for name, value in (("gain", gain), ("dose", dose)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InvalidInput(f"--{name} must be a positive number, not {value}; correct the option.")
    if offset is not None and not math.isfinite(offset):
        raise InvalidInput(f"--offset must be a finite number, not {offset}; correct the option.")
    meta = metadata or ImageMetadata()
    sources = []
    if gain is not None:
        sources.append("user")
    elif meta.gain:
        gain = meta.gain
        sources.append("file")
    if offset is not None:
        sources.append("user")
    elif meta.offset is not None:
        offset = meta.offset
        sources.append("file")
    if dose is not None:
        sources.append("user")
    elif gain is None and meta.dose:
        dose = meta.dose
        sources.append("file")
    stack = _as_frames(frames, max_frames=8)
    mean_level = float(stack.mean())
    if gain is not None and offset is not None:
        return CountsCalibration(
            gain=float(gain), offset=float(offset), dose=(mean_level - offset) / gain,
            source=_join(sources), method="given", quality="good",
        )
    if dose is not None and gain is None:
        if offset is None:
            estimate = estimate_counts(stack)
            offset = estimate.offset
            sources.append("estimated")
        gain = (mean_level - offset) / dose
        if not gain > 0:
            raise InvalidInput(
                f"a dose of {dose:g} electrons/px with offset {offset:g} gives a negative gain for an "
                f"image of mean {mean_level:g}; check --dose and --offset."
            )
        return CountsCalibration(gain=float(gain), offset=float(offset), dose=float(dose),
                                 source=_join(sources), method="given", quality="good")
    may_assume = assume_offset is not None and offset is None
    try:
        estimate = estimate_counts(stack, gain=gain, offset=offset)
    except InvalidInput as error:
        if not may_assume:
            raise
        estimate = _assuming_offset(stack, gain, assume_offset, str(error).split(";")[0], error)
        sources.append("assumed")
    else:
        if may_assume and not estimate.offset_determined:
            estimate = _assuming_offset(stack, gain, assume_offset, "the image is too flat to fit the offset")
            sources.append("assumed")
    sources.append("estimated")
    return CountsCalibration(**{**estimate.__dict__, "source": _join(sources)})


def _assuming_offset(stack: np.ndarray, gain: float | None, offset: float, problem: str,
                     error: InvalidInput | None = None) -> CountsCalibration:
    """The gain fitted with ``offset`` held, marked poor with a note saying why it was assumed."""
    try:
        estimate = estimate_counts(stack, gain=gain, offset=offset)
    except InvalidInput:
        if error is not None:
            raise error from None
        raise
    note = (f"{problem}, so offset {offset:g} was assumed (right for a dark-subtracted counting "
            "camera) and only the gain was fitted; give --gain/--offset if you know them.")
    return CountsCalibration(**{**estimate.__dict__, "quality": "poor", "notes": (note, *estimate.notes)})


def check_dose_range(dose: float | None, card_dose_range: Sequence[float | None] | None) -> str | None:
    """Warn when a dose lies outside the range a model was trained for.

    Parameters
    ----------
    dose : float or None
        Electrons (counts) per pixel of the input, e.g. :attr:`CountsCalibration.dose`.
    card_dose_range : (low, high)
        The model card's dose range in counts per pixel; either end may be None (open).

    Returns
    -------
    str or None
        A one-sentence warning, or None when the dose is inside the range (or unknown).

    Notes
    -----
    Seed 001 sec. 3.1 trains separate networks for low doses (25 + Exp(75) counts/px) and
    ordinary doses (200-2500 counts/px); seed 003 trains at 0.45 counts/px in vacuum. A model
    used far from its training dose sees noise it has not learnt to remove.

    Examples
    --------
    >>> check_dose_range(6.4, (25, None))
    'estimated dose 6.4 electrons/px is below the 25 counts/px this model was trained for; choose a lower-dose model, or give --gain/--offset if the estimate is wrong.'
    >>> check_dose_range(300, (200, 2500)) is None
    True
    """
    if dose is None or card_dose_range is None:
        return None
    low, high = (list(card_dose_range) + [None, None])[:2]
    if not math.isfinite(dose) or dose <= 0:
        return (f"the dose could not be determined (got {dose:g} electrons/px); "
                "give --gain and --offset (or --dose) so the counts are right.")
    if low is not None and dose < low:
        return (f"estimated dose {dose:.3g} electrons/px is below the {low:g} counts/px this model "
                "was trained for; choose a lower-dose model, or give --gain/--offset if the estimate is wrong.")
    if high is not None and dose > high:
        return (f"estimated dose {dose:.3g} electrons/px is above the {high:g} counts/px this model "
                "was trained for; choose a higher-dose model, or give --gain/--offset if the estimate is wrong.")
    return None


# ----------------------------------------------------------------------------- internals


def _join(sources: list[str]) -> str:
    return "+".join(dict.fromkeys(sources)) or "estimated"


def _as_frames(frames: np.ndarray | Iterable[np.ndarray], max_frames: int) -> np.ndarray:
    if isinstance(frames, np.ndarray):
        array = frames
        if array.ndim > 3:
            array = array.reshape((-1,) + array.shape[-2:])
        if array.ndim == 3:
            array = array[:max_frames]
    else:
        selected = []
        for frame in frames:
            selected.append(np.asarray(frame))
            if len(selected) == max_frames:
                break
        if not selected:
            raise InvalidInput("no frames were given to estimate the detector gain from; pass an image.")
        array = np.stack(selected)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or np.iscomplexobj(array) or array.dtype.names is not None:
        raise InvalidInput(
            f"gain estimation needs real-valued 2-D frames, not an array of shape {array.shape} "
            f"and type {array.dtype}; pass grayscale frames."
        )
    height, width = array.shape[-2:]
    if height * width > _MAX_PIXELS_PER_FRAME:  # a central crop is plenty and bounds memory
        side = int(math.isqrt(_MAX_PIXELS_PER_FRAME))
        top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
        array = array[:, top:top + side, left:left + side]
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise InvalidInput(
            "the image contains NaN or infinite pixels, so the detector gain cannot be estimated; "
            "replace them (e.g. ImageJ Process > Noise > Remove NaNs) or give --gain and --offset."
        )
    return array


def _pixel_statistics(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel mean, per-pixel noise variance, and a noise residual for correlations."""
    if stack.shape[0] == 1:
        frame = stack[0]
        residual = frame[:-2] - 2.0 * frame[1:-1] + frame[2:]
        return frame[1:-1], residual * residual / 6.0, residual
    steps = np.diff(stack, axis=0)
    variance = np.einsum("tij,tij->ij", steps, steps) / (2.0 * steps.shape[0])
    return stack.mean(axis=0), variance, steps[0]


def _blocks(image: np.ndarray, block: int) -> np.ndarray:
    rows, cols = image.shape[0] // block, image.shape[1] // block
    cropped = image[: rows * block, : cols * block]
    return cropped.reshape(rows, block, cols, block).mean(axis=(1, 3)).ravel()


def _weighted_line(x, y, w, gain, offset):
    """Least squares ``y = a x + c`` with weights; either a (gain) or the root (offset) fixed."""
    if gain is not None and offset is not None:
        return gain, -gain * offset
    if gain is not None:
        return gain, float(np.sum(w * (y - gain * x)) / np.sum(w))
    if offset is not None:
        shifted = x - offset
        a = float(np.sum(w * shifted * y) / np.sum(w * shifted * shifted))
        return a, -a * offset
    total = np.sum(w)
    x_mean, y_mean = np.sum(w * x) / total, np.sum(w * y) / total
    sxx = np.sum(w * (x - x_mean) ** 2)
    if sxx <= 0:
        return float(np.sum(w * y * x) / np.sum(w * x * x)), 0.0
    a = float(np.sum(w * (x - x_mean) * (y - y_mean)) / sxx)
    return a, float(y_mean - a * x_mean)


def _robust_line(x: np.ndarray, y: np.ndarray, *, gain, offset):
    """Iteratively reweighted fit of block variances, rejecting blocks off the line."""
    keep = np.ones(x.size, dtype=bool)
    weights = np.ones(x.size)
    slope, intercept = _weighted_line(x, y, weights, gain, offset)
    for iteration in range(30):
        predicted = slope * x + intercept
        floor = 1e-6 * max(float(np.max(np.abs(predicted))), 1e-300)
        weights = 1.0 / np.maximum(np.abs(predicted), floor) ** 2  # var(block var) ~ var**2
        relative = (y - predicted) / np.maximum(np.abs(predicted), floor)
        spread = 1.4826 * np.median(np.abs(relative[keep] - np.median(relative[keep])))
        new_keep = np.abs(relative - np.median(relative[keep])) <= _REJECT_SIGMAS * max(spread, 1e-12)
        if new_keep.sum() < max(8, 0.1 * x.size):
            break
        if iteration > 2 and np.array_equal(new_keep, keep):
            break
        keep = new_keep
        slope, intercept = _weighted_line(x[keep], y[keep], weights[keep], gain, offset)
    return (slope, intercept, keep) + _standard_errors(x[keep], y[keep], weights[keep], slope,
                                                       intercept, gain, offset)


def _standard_errors(x, y, w, slope, intercept, gain, offset) -> tuple[float, float]:
    """Errors of (gain, offset) from the scatter of the kept blocks about the line.

    Taking the scale from the residuals, not from Poisson theory, covers correlated noise.
    """
    fixed = (gain is not None) + (offset is not None)
    residual_var = np.sum(w * (y - slope * x - intercept) ** 2) / max(x.size - (2 - fixed), 1)
    total = np.sum(w)
    if gain is not None and offset is not None:
        return 0.0, 0.0
    if gain is not None:  # only the intercept was fitted: offset = -intercept / gain
        return 0.0, math.sqrt(residual_var / total) / gain
    if offset is not None:  # line through (offset, 0)
        leverage = np.sum(w * (x - offset) ** 2)
        return (math.sqrt(residual_var / leverage) if leverage > 0 else math.inf), 0.0
    x_mean = np.sum(w * x) / total
    sxx = np.sum(w * (x - x_mean) ** 2)
    if sxx <= 0 or slope <= 0:
        return math.inf, math.inf
    slope_se = math.sqrt(residual_var / sxx)
    # offset = x_mean - y_mean / slope, with y_mean and slope uncorrelated at the weighted centre
    y_mean = slope * x_mean + intercept
    offset_se = math.sqrt(residual_var / total / slope ** 2 + y_mean ** 2 * slope_se ** 2 / slope ** 4)
    return slope_se, offset_se


def _linearity(x: np.ndarray, y: np.ndarray, slope: float, intercept: float, bins: int = 12) -> float:
    order = np.argsort(x)
    deviations = []
    for chunk in np.array_split(order, min(bins, max(1, x.size // 8))):
        if chunk.size == 0:
            continue
        predicted = slope * x[chunk].mean() + intercept
        if predicted > 0:
            deviations.append(y[chunk].mean() / predicted - 1.0)
    return float(np.sqrt(np.mean(np.square(deviations)))) if deviations else math.inf


def _noise_correlation(residual: np.ndarray, keep: np.ndarray, block: int, n_frames: int):
    rows, cols = residual.shape[0] // block, residual.shape[1] // block
    mask = np.repeat(np.repeat(keep.reshape(rows, cols), block, 0), block, 1)
    data = residual[: rows * block, : cols * block]

    def lag_one(a: np.ndarray, b: np.ndarray) -> float | None:
        if a.size < 100 or a.std() == 0 or b.std() == 0:
            return None
        return float(np.corrcoef(a, b)[0, 1])

    both_x = mask[:, :-1] & mask[:, 1:]
    corr_x = lag_one(data[:, :-1][both_x], data[:, 1:][both_x])
    corr_y = None
    if n_frames > 1:  # a single frame's residual is itself a difference along y
        both_y = mask[:-1] & mask[1:]
        corr_y = lag_one(data[:-1][both_y], data[1:][both_y])
    return corr_x, corr_y


def _offset_separable(offset_se: float, signal: float, block_mean: np.ndarray) -> bool:
    """Whether the block means span enough intensity to fit the offset apart from the gain."""
    if not signal > 0:
        return True  # a fitted offset above the mean is judged (and reported) on its own
    low, high = np.percentile(block_mean, [5, 95])
    return not (offset_se > 0.1 * signal or high - low < 0.2 * signal)


def _judge(gain, gain_se, offset_se, mean_level, offset, dose, linearity, kept, corr_x,
           block_mean, fixed_offset) -> tuple[str, list[str]]:
    notes = []
    score = 0  # 0 good, 1 fair, 2 poor
    relative = gain_se / gain if gain > 0 else math.inf
    if relative > 0.1:
        score = 2
        notes.append(f"the gain is uncertain (±{100 * relative:.0f} %); give --gain/--offset if you know them.")
    elif relative > 0.03:
        score = max(score, 1)
    if fixed_offset is None and not _offset_separable(offset_se, mean_level - offset, block_mean):
        score = 2
        notes.append(
            "the image has too little intensity variation to separate gain from offset; "
            "give --offset (0 for a dark-subtracted counting camera)."
        )
    if dose <= 0:
        score = 2
        notes.append("the fitted offset lies above the mean intensity; give --offset if you know it.")
    if linearity > 0.1:
        score = 2
        notes.append(f"the noise variance departs from a straight line by {100 * linearity:.0f} %, "
                     "so the data are not simply Poisson-distributed (saturation, gain reference?).")
    elif linearity > 0.03:
        score = max(score, 1)
    if kept < 0.5:
        score = max(score, 1)
        notes.append(f"only {100 * kept:.0f} % of the image looked like pure noise; the estimate rests on that part.")
    if corr_x is not None and corr_x > 0.1:
        notes.append(
            f"the noise is correlated along the scan line (lag-1 correlation {corr_x:.2f}); the gain is "
            "the noise-equivalent one for independent pixels."
        )
    return ("good", "fair", "poor")[score], notes
