"""What the user's frames allow ``adapt`` to learn from, checked before any training (no torch).

:func:`prepare` turns the frames of one field into counts, registers them, picks the
self-supervised method the data support (issue 18) and keeps a strip of every frame out
of training to score snapshots and the classical filter on:

* ``pair``: two or more frames of one field (a pair, series or movie) of any other
  detector: Noise2Noise (Lehtinen et al. 2018) between registered neighbouring frames,
  whose noise is independent;
* ``thinning``: frames of whole counts (a counting detector after gain/offset), one or
  many: binomial thinning splits each into two independent Poisson images of the *same*
  object, so atoms that move between frames do not blur the target (on a simulated
  100-frame HAADF series with hopping atoms it scored 37.0 dB against the truth where the
  pair method scored 32.6 dB, ``docs/benchmarks.md``);
* ``blindspot``: one frame of any detector: a blind-spot network (structured Noise2Void,
  Broaddus et al. 2020) whose mask covers the scan-line neighbours with correlated noise;
* ``sure``: one frame of any detector: blind-spot training, but snapshots scored by
  Monte-Carlo SURE with the frame's own noise variance and scan-line correlation
  (:func:`emdenoise.adapt.scores.sure_error`), which, unlike the blind-spot error, scores
  the network as served (seeing every pixel) -- so a sim-trained prior (``--from``) is
  fine-tuned and kept when that does not help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emdenoise.adapt import scores
from emdenoise.errors import InvalidInput

METHODS = ("auto", "pair", "thinning", "blindspot", "sure", "noise2atom")
#: Share of rows (the bottom strip of every frame) kept out of training for validation.
HELD_OUT_SHARE = 0.125
#: Fewest rows of that strip, and the smallest frame side adapt trains on.
MIN_HELD_OUT_ROWS = 32
MIN_SIDE = 64
#: Noise-corrected correlation of the smoothed frames below which two frames do not show one field.
MIN_FIELD_CORRELATION = 0.5
#: Gaussian sigma [px] of the smoothing before registration and the field check.
SMOOTHING = 2.0
#: Most neighbouring pairs a series contributes (spread over its length).
MAX_PAIRS = 64


@dataclass(frozen=True)
class AdaptData:
    """Counts ready for training, the method, and how they were obtained.

    Attributes
    ----------
    method : {"pair", "thinning", "blindspot"}
    train, held_out : ndarray, float32, (T, Y, X)
        Frames in counts: the training rows and the held-out bottom strip. For the pair
        method, frames ``2p`` and ``2p + 1`` are a registered pair of neighbours.
    gain, offset, dose : float
        ``counts = (raw - offset) / gain``; mean counts per pixel.
    calibration : str
        ``user`` or how gain and offset were estimated.
    half_width : int
        Scan-line neighbours on each side with correlated noise (blind-spot mask).
    shifts : list of (int, int)
        Pair method: the shift (dy, dx) of each registered pair, removed by cropping.
    notes : tuple of str
    source_frames : int
        Frames given (the pair method trains on pairs of neighbours among them).
    """

    method: str
    train: np.ndarray
    held_out: np.ndarray
    gain: float
    offset: float
    dose: float
    calibration: str
    half_width: int
    shifts: list = field(default_factory=list)
    notes: tuple = field(default_factory=tuple)
    source_frames: int = 0

    def summary(self) -> dict:
        """What the model card records about the data."""
        t, h, w = self.train.shape
        return {"method": self.method, "frames": int(self.source_frames or t), "train_frames": int(t),
                "pairs": len(self.shifts), "train_shape": [int(h), int(w)],
                "held_out_rows": int(self.held_out.shape[1]), "dose_counts_per_px": float(self.dose),
                "gain": float(self.gain), "offset": float(self.offset), "calibration": self.calibration,
                "scan_line_mask_half_width": int(self.half_width), "shifts": [list(s) for s in self.shifts],
                "notes": list(self.notes)}


def stack(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Frames of one size as a float32 (T, Y, X) array, or a sentence saying what is wrong."""
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise InvalidInput("no frames were given; give one frame, a pair or a series of one field.")
    for index, frame in enumerate(frames):
        if frame.ndim != 2:
            raise InvalidInput(f"frame {index} has shape {frame.shape}; give 2-D frames (one field of view each).")
        if frame.shape != frames[0].shape:
            raise InvalidInput(f"frames of different sizes ({frames[0].shape[1]}x{frames[0].shape[0]} and "
                               f"{frame.shape[1]}x{frame.shape[0]} at frame {index}); crop them to one size first.")
    data = np.stack(frames).astype(np.float32)
    if not np.isfinite(data).all():
        raise InvalidInput("the frames contain NaN or infinite pixels; replace them before training.")
    if min(data.shape[1:]) < MIN_SIDE:
        raise InvalidInput(f"frames of {data.shape[2]}x{data.shape[1]} px are too small to learn from; "
                           f"give frames of at least {MIN_SIDE} px a side.")
    return data


def to_counts(data: np.ndarray, gain: float | None, offset: float | None) -> tuple[np.ndarray, float, float, str, list]:
    """Counts from raw frames with the given or estimated gain and offset (mean-variance fit)."""
    notes: list[str] = []
    if gain is not None and offset is not None:
        source = "user"
    else:
        from emdenoise.noise.calibration import estimate_counts

        try:
            fit = estimate_counts(data, gain=gain, offset=offset)
        except InvalidInput as error:
            raise InvalidInput(f"cannot tell the detector gain and offset from these frames ({error}); "
                               "give --gain and --offset.") from None
        gain, offset, source = fit.gain, fit.offset, f"estimated ({fit.method}, {fit.quality})"
        notes += list(fit.notes)
    if not (np.isfinite(gain) and gain > 0 and np.isfinite(offset)):
        raise InvalidInput(f"gain {gain!r} and offset {offset!r} must be finite with a positive gain; "
                           "give the detector reading per electron and at zero electrons.")
    counts = (data - np.float32(offset)) / np.float32(gain)
    dose = float(counts.mean())
    if not 0.005 <= dose <= 1e5:
        raise InvalidInput(f"the frames average {dose:.3g} counts per pixel with gain {gain:.4g} and offset "
                           f"{offset:.6g}; check the gain and offset so the frames are detected electrons per pixel.")
    return counts.astype(np.float32), float(gain), float(offset), source, notes


def register(counts: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Neighbouring frames as registered pairs: whole-pixel shifts by phase correlation, then each pair's overlap.

    Returns ``pairs`` (2P, Y, X), frames ``2p`` and ``2p + 1`` showing the same area (at
    most :data:`MAX_PAIRS` pairs, spread over the series), and each pair's shift ``(dy,
    dx)``: frame t + 1 at ``(y + dy, x + dx)`` shows what frame t shows at ``(y, x)``.
    Noise2Noise needs only neighbours aligned, so a series may drift far over its length.
    Whole-pixel shifts keep the noise of every pixel independent (interpolation would
    correlate it). Frames that do not show one field are refused.
    """
    from skimage.registration import phase_cross_correlation

    _, height, width = counts.shape
    starts = np.unique(np.linspace(0, len(counts) - 2, min(MAX_PAIRS, len(counts) - 1)).round().astype(int))
    shifts, crops = [], []
    for t in starts:
        shift, _, _ = phase_cross_correlation(_smooth(counts[t]), _smooth(counts[t + 1]), normalization=None)
        dy, dx = (-int(round(v)) for v in shift)
        if height - abs(dy) < max(MIN_SIDE, height // 2) or width - abs(dx) < max(MIN_SIDE, width // 2):
            raise InvalidInput(f"frames {t} and {t + 1} are shifted by ({dy}, {dx}) px, so less than half of the field "
                               "is common to both; give frames of one area.")
        a = counts[t, max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
        b = counts[t + 1, max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)]
        r = _field_correlation(a, b)
        if r < MIN_FIELD_CORRELATION:
            raise InvalidInput(f"frames {t} and {t + 1} do not show the same field (structure correlation {r:.2f} after "
                               "the best shift); give frames of one area, or adapt on a single frame with --method blindspot.")
        shifts.append((dy, dx))
        crops.append((a, b))
    rows, cols = min(a.shape[0] for a, _ in crops), min(a.shape[1] for a, _ in crops)
    pairs = np.stack([frame[:rows, :cols] for pair in crops for frame in pair])
    return pairs.astype(np.float32), shifts


def _smooth(frame: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(frame, dtype=np.float64), SMOOTHING)


def _field_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the structure two registered frames share, with the shot noise's share removed.

    Smoothing leaves ``mean * sum(kernel^2) * (1 + 2 sum rho_k)`` of Poisson noise variance
    in each frame (``rho_k`` the scan-line correlations); taking it out of the variances
    makes the figure near 1 for one field at any dose and near 0 for unrelated fields. With
    no structure above the noise (a flat field) there is nothing to contradict: 1.
    """
    sa, sb = _smooth(a), _smooth(b)
    power = 1.0 / (4 * np.pi * SMOOTHING**2)
    noise = [max(float(f.mean()), 0.0) * power * (1 + 2 * sum(max(r, 0.0) for r in scores.scan_line_correlation(f)))
             for f in (a, b)]
    signal_a, signal_b = float(sa.var()) - noise[0], float(sb.var()) - noise[1]
    if min(signal_a, signal_b) <= 0.1 * max(noise):
        return 1.0
    covariance = float(np.mean((sa - sa.mean()) * (sb - sb.mean())))
    return float(np.clip(covariance / np.sqrt(signal_a * signal_b), -1.0, 1.0))


def choose_method(counts: np.ndarray, requested: str = "auto", *, unmasked_prior: bool = False) -> str:
    """The self-supervised method these counts allow (see the module docstring).

    ``unmasked_prior``: training starts from a network served unmasked (a sim-trained VST
    U-Net), so a single frame that is not whole counts gets ``sure``, which scores that
    network as served and keeps it when fine-tuning does not help, instead of ``blindspot``.
    """
    if requested not in METHODS:
        raise InvalidInput(f"unknown method {requested!r}; choose one of {', '.join(METHODS)}.")
    if requested == "pair" and len(counts) < 2:
        raise InvalidInput("the pair method needs two or more frames of one field; give a pair or a series.")
    if requested == "thinning" and not scores.is_whole_counts(counts):
        raise InvalidInput("binomial thinning needs whole counts (a counting detector after gain/offset); these "
                           "frames are not whole numbers, so use --method blindspot or give the exact gain and offset.")
    if requested != "auto":
        return requested
    if scores.is_whole_counts(counts):
        return "thinning"  # within each frame: nothing moves between the halves, unlike between frames
    if len(counts) >= 2:
        return "pair"
    return "sure" if unmasked_prior else "blindspot"


def split(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training rows and the held-out bottom strip of every frame."""
    height = counts.shape[1]
    rows = max(MIN_HELD_OUT_ROWS, int(round(height * HELD_OUT_SHARE)))
    if height - rows < MIN_SIDE:
        raise InvalidInput(f"frames of {height} rows leave too little to train on after the {rows} held-out rows; "
                           f"give frames of at least {MIN_SIDE + MIN_HELD_OUT_ROWS} rows.")
    return counts[:, : height - rows].copy(), counts[:, height - rows :].copy()


def prepare(frames: Sequence[np.ndarray], *, method: str = "auto", gain: float | None = None,
            offset: float | None = None, unmasked_prior: bool = False) -> AdaptData:
    """Check, calibrate, register and split the user's frames; choose the method.

    Parameters
    ----------
    frames : sequence of ndarray
        Frames of one field (one frame, a pair or a series), raw detector readings.
    method : str
        ``auto`` or one of :data:`METHODS` (``noise2atom`` is run by ``train-series``).
    gain, offset : float, optional
        Detector calibration; estimated from the mean-variance relation when absent.
    unmasked_prior : bool
        Training starts from a network served unmasked (:func:`choose_method`).

    Returns
    -------
    AdaptData
    """
    if method == "noise2atom":
        raise InvalidInput("noise2atom runs through emdenoise train-series (it needs 10 or more frames).")
    data = stack(frames)
    counts, gain, offset, source, notes = to_counts(data, gain, offset)
    chosen = choose_method(counts, method, unmasked_prior=unmasked_prior)
    shifts: list = []
    if chosen == "pair":
        counts, shifts = register(counts)
    elif len(counts) > 1:
        notes.append(f"{len(counts)} frames, each used on its own ({chosen}), so nothing that moves between "
                     "frames blurs the targets.")
    half_width = scores.mask_half_width(counts[0])
    train, held_out = split(counts)
    return AdaptData(method=chosen, train=train, held_out=held_out, gain=gain, offset=offset,
                     dose=float(counts.mean()), calibration=source, half_width=half_width,
                     shifts=[tuple(s) for s in shifts], notes=tuple(notes), source_frames=len(data))
