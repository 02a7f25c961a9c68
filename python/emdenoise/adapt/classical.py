"""``classical-auto``: a Gaussian (or VST + NLM) whose parameter the data choose, without a clean image.

The learned model of ``adapt`` must beat the best classical filter *for this dataset*, so
the filter's parameter is picked by the same no-truth criterion the learned model is scored
by (:mod:`emdenoise.adapt.scores`), through the benchmarks' tuning module
(:mod:`emdenoise.tuning`). As a served model (``export/classical-auto``) it works frame by
frame with the blind-spot criterion, which needs no calibration at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from emdenoise.adapt import scores
from emdenoise.tuning import GAUSSIAN_SIGMAS, VST_NLM_H, tune

Criterion = Callable[[scores.Restore], float]


@dataclass(frozen=True)
class ClassicalChoice:
    """The classical filter a dataset chose.

    Attributes
    ----------
    method : {"gaussian", "vst_nlm"}
    param : float
        Gaussian sigma [px] or NLM cut-off ``h``.
    error : float
        Its no-truth error [counts^2].
    errors : dict
        ``{"gaussian": {sigma: error}, "vst_nlm": {h: error}}``.
    """

    method: str
    param: float
    error: float
    errors: dict

    @property
    def label(self) -> str:
        return f"Gaussian sigma {self.param:g} px" if self.method == "gaussian" else f"VST + NLM h {self.param:g}"

    def restore(self, counts: np.ndarray) -> np.ndarray:
        """Apply the chosen filter to a frame in counts."""
        return restorer(self.method, self.param)(counts)


def restorer(method: str, param: float) -> scores.Restore:
    """``counts -> counts`` for a Gaussian of sigma ``param`` or VST + NLM with cut-off ``param``."""
    from scipy.ndimage import gaussian_filter

    if method == "gaussian":
        return lambda image: gaussian_filter(np.asarray(image, dtype=np.float32), float(param), mode="reflect")
    if method == "vst_nlm":
        from emdenoise.baselines.sbd import vst_nlm

        return lambda image: vst_nlm(np.clip(image, 0, None), gain=1.0, offset=0.0, h=float(param))
    raise ValueError(f"unknown classical method {method!r}")


def choose(criterion: Criterion, *, with_nlm: bool = True) -> ClassicalChoice:
    """Tune the Gaussian (and VST + NLM) by ``criterion`` and keep the lower error.

    Parameters
    ----------
    criterion : callable
        ``restore -> error`` on the data, e.g. ``lambda f: scores.paired_error(f, a, b)``.
    with_nlm : bool
        Also tune VST + NLM (slower: about a second per megapixel and candidate).
    """
    found = {"gaussian": tune(GAUSSIAN_SIGMAS, lambda s: criterion(restorer("gaussian", s)))}
    if with_nlm:
        found["vst_nlm"] = tune(VST_NLM_H, lambda h: criterion(restorer("vst_nlm", h)))
    method = min(found, key=lambda key: found[key].score)
    return ClassicalChoice(method=method, param=float(found[method].value), error=found[method].score,
                           errors={key: dict(t.scores) for key, t in found.items()})


def choose_blind(frames: np.ndarray, half_width: int) -> ClassicalChoice:
    """Gaussian sigma by the blind-spot criterion over ``frames`` (T, Y, X), any units."""
    frames = np.asarray(frames)

    def error(sigma: float) -> float:
        return float(np.mean([scores.blind_spot_error(lambda f: scores.donut_gaussian(f, sigma, half_width), frame)
                              for frame in frames]))

    tuned = tune(GAUSSIAN_SIGMAS, error)
    return ClassicalChoice(method="gaussian", param=float(tuned.value), error=tuned.score,
                           errors={"gaussian": dict(tuned.scores)})


#: Side of the central crop on which ``classical-auto`` chooses its sigma.
CHOICE_SIDE = 1024


def _central_crop(frame: np.ndarray, side: int) -> np.ndarray:
    top, left = max(0, (frame.shape[0] - side) // 2), max(0, (frame.shape[1] - side) // 2)
    return frame[top : top + side, left : left + side]


def gaussian_auto(image: np.ndarray) -> np.ndarray:
    """The served ``classical-auto``: Gaussian with sigma chosen on this frame by the blind-spot criterion.

    The criterion ranks sigmas identically in any linear units, so the frame needs no
    gain or offset; the mask covers the scan-line neighbours whose noise correlates. On
    frames larger than ``CHOICE_SIDE`` the sigma is chosen on the central crop of that
    side (a million pixels pin one global parameter), so the cost stays bounded.
    """
    from scipy.ndimage import gaussian_filter

    from emdenoise.baselines._frame import as_frame

    frame = as_frame(image)
    crop = _central_crop(frame, CHOICE_SIDE)
    choice = choose_blind(crop[None], scores.mask_half_width(crop))
    return gaussian_filter(frame, choice.param, mode="reflect").astype(np.float32)
