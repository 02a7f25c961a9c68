"""Classical denoisers of the seed papers' Table 1, as functions and as servable models.

``REGISTRY[key](image, **params)`` takes one 2D frame in any intensity units and returns a
float32 frame of the same shape; each function handles its own scaling:

* Ede & Beanland (seed 001): ``gaussian_3x3``, ``bilateral``, ``median_3x3``, ``wiener``,
  ``wavelet_bayesshrink``, ``tv_chambolle``, ``tv_bregman``, ``nl_means`` (and
  ``unfiltered``) run on the frame mapped to [0, 1], where their parameters are defined.
* SBD (seed 003): ``low_pass``, ``adaptive_wiener`` (linear / scale-free) and
  ``vst_nlm``, ``vst_bm3d``, which need counts and take ``gain`` and ``offset``.

:data:`BASELINES` holds each one with its paper parameters; their cards live in
``export/classical-*/card.json`` (see :mod:`emdenoise.baselines.cards`).
"""

from emdenoise.baselines.ede import (
    bilateral,
    gaussian_3x3,
    median_3x3,
    nl_means,
    tv_bregman,
    tv_chambolle,
    unfiltered,
    wavelet_bayesshrink,
    wiener,
)
from emdenoise.baselines.registry import BASELINES, BY_KEY, REGISTRY, Baseline, table_baselines
from emdenoise.baselines.sbd import adaptive_wiener, low_pass, vst_bm3d, vst_nlm
from emdenoise.baselines.vst import anscombe, inverse_anscombe_unbiased

__all__ = [
    "BASELINES",
    "BY_KEY",
    "Baseline",
    "REGISTRY",
    "adaptive_wiener",
    "anscombe",
    "bilateral",
    "gaussian_3x3",
    "inverse_anscombe_unbiased",
    "low_pass",
    "median_3x3",
    "nl_means",
    "table_baselines",
    "tv_bregman",
    "tv_chambolle",
    "unfiltered",
    "vst_bm3d",
    "vst_nlm",
    "wavelet_bayesshrink",
    "wiener",
]
