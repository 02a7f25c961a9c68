"""Every classical baseline with its paper parameters, in the order of the papers' tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from emdenoise.adapt.classical import gaussian_auto
from emdenoise.baselines import ede, hrtem, sbd

SEED_EDE = "seed 001: Ede & Beanland 2019, sec. 4.1 and Table 1"
SEED_SBD = "seed 003: Mohan et al. (SBD), sec. 5, appendix D and Table 1"
SEED_HRTEM = ("issue 17: filters HRTEM users apply (Gaussian; Fourier Wiener and ABSF of Kilaas 1998, "
              "J. Microsc. 190:45), tuned on validation images as seed 003 sec. 5 tunes its baselines")
SOURCE_AUTO = ("issue 18: Gaussian whose sigma each frame chooses by the blind-spot criterion "
               "(Noise2Self, Batson & Royer 2019), masking the scan-line neighbours with correlated noise")


@dataclass(frozen=True)
class Baseline:
    """A classical denoiser as a benchmark method and as a servable model.

    Attributes
    ----------
    key : str
        Name in :data:`REGISTRY` (the card's ``classical.function``).
    label : str
        Row label in the paper's table.
    function : callable
        ``function(image, **params) -> float32 image`` of the same shape.
    params : dict
        The paper's parameters, passed explicitly.
    table : {"ede", "sbd", "hrtem", "auto"}
        Which paper's Table 1 the method belongs to (``hrtem``: the extra rows of the
        cross-domain HRTEM benchmark; ``auto``: none, tuned per frame).
    source : str
        Seed citation.
    card_id : str or None
        Model id of its card in ``export/`` (None: not served, e.g. "Unfiltered").
    name : str
        Human-readable model name.
    needs_counts : bool
        True when ``params`` include ``gain`` and ``offset`` that must describe the
        detector (the Poisson VST methods).
    notes : tuple of str
        What a user should know, copied into the card.
    metrics : dict
        Figures a benchmark measured for the served model, copied into the card.
    default : bool
        The served model is its modality's default (set from the benchmarks, issue 17).
    """

    key: str
    label: str
    function: Callable[..., np.ndarray]
    params: dict[str, Any]
    table: str
    source: str
    card_id: str | None = None
    name: str = ""
    needs_counts: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    metrics: dict = field(default_factory=dict)
    default: bool = False

    def __call__(self, image: np.ndarray, **overrides: Any) -> np.ndarray:
        """Run the method with the paper's parameters, updated by ``overrides``."""
        return self.function(image, **{**self.params, **overrides})


_UNIT = "Runs on the frame mapped to [0, 1] (min-max) and maps the result back, as seed 001 did."

BASELINES: tuple[Baseline, ...] = (
    Baseline("unfiltered", "Unfiltered", ede.unfiltered, {}, "ede", SEED_EDE),
    Baseline(
        "gaussian_3x3", "Gaussian", ede.gaussian_3x3, {"ksize": 3, "sigma": 0.0}, "ede", SEED_EDE,
        "classical-gaussian3", "Gaussian blur 3x3 (OpenCV)",
        notes=(_UNIT, "OpenCV's 3x3 kernel for sigma 0 is the binomial [1, 2, 1]/4."),
    ),
    Baseline(
        "bilateral", "Bilateral", ede.bilateral,
        {"d": 9, "sigma_color": 75.0, "sigma_space": 75.0}, "ede", SEED_EDE,
        "classical-bilateral", "Bilateral filter d=9, sigma 75/75 (OpenCV)",
        notes=(
            _UNIT,
            "sigma_color 75 on [0, 1] data makes the range kernel flat: this is a 49-pixel "
            "disc blur, as in the paper's benchmark.",
        ),
    ),
    Baseline(
        "median_3x3", "Median", ede.median_3x3, {"ksize": 3}, "ede", SEED_EDE,
        "classical-median3", "Median filter 3x3 (OpenCV)", notes=(_UNIT,),
    ),
    Baseline(
        "wiener", "Wiener", ede.wiener, {"mysize": 3}, "ede", SEED_EDE,
        "classical-wiener", "Wiener filter 3x3 (SciPy)",
        notes=(_UNIT, "SciPy pads with zeros: the outermost pixel ring comes out darker."),
    ),
    Baseline(
        "wavelet_bayesshrink", "Wavelet", ede.wavelet_bayesshrink,
        {"wavelet": "db1", "mode": "soft", "wavelet_levels": None}, "ede", SEED_EDE,
        "classical-wavelet", "BayesShrink wavelet soft-thresholding (scikit-image)",
        notes=(_UNIT,),
    ),
    Baseline(
        "tv_chambolle", "Chambolle TV", ede.tv_chambolle,
        {"weight": 0.1, "eps": 2.0e-4, "max_num_iter": 200}, "ede", SEED_EDE,
        "classical-tv-chambolle", "Chambolle total variation, weight 0.1 (scikit-image)",
        notes=(_UNIT,),
    ),
    Baseline(
        "tv_bregman", "Bregman TV", ede.tv_bregman,
        {"weight": 0.1, "eps": 2.0e-4, "max_num_iter": 200, "isotropic": False}, "ede", SEED_EDE,
        "classical-tv-bregman", "Split-Bregman anisotropic total variation, weight 0.1 (scikit-image)",
        notes=(_UNIT, "scikit-image's Bregman weight is a fidelity weight: 0.1 smooths strongly."),
    ),
    Baseline(
        "nl_means", "NL means", ede.nl_means,
        {"patch_size": 7, "patch_distance": 11, "h": 0.1, "fast_mode": True}, "ede", SEED_EDE,
        "classical-nlm", "Non-local means (scikit-image defaults)", notes=(_UNIT,),
    ),
    Baseline(
        "low_pass", "Low Pass Filter", sbd.low_pass,
        {"cutoff": sbd.DEFAULT_LPF_CUTOFF, "order": 4}, "sbd", SEED_SBD,
        "classical-lpf", "Butterworth low-pass filter",
        notes=(
            "SBD gives no cut-off; 0.15 cycles/px keeps periods down to ~7 px (lattice "
            "fringes at usual sampling). At very low dose a lower cut-off scores better: "
            "`emdenoise bench sbd` tunes it on validation data. Linear: works in any units.",
        ),
    ),
    Baseline(
        "adaptive_wiener", "Adaptive Wiener Filter", sbd.adaptive_wiener, {"size": 13}, "sbd", SEED_SBD,
        "classical-wiener13", "Adaptive Wiener filter 13x13 (Lim)",
        notes=("Local mean/variance over 13x13, noise power = mean local variance; reflected borders.",),
    ),
    Baseline(
        "vst_nlm", "VST + NLM", sbd.vst_nlm,
        {"gain": 1.0, "offset": 0.0, "h": 0.8, "patch_size": 5, "patch_distance": 6}, "sbd", SEED_SBD,
        "classical-vst-nlm", "Anscombe VST + non-local means + exact unbiased inverse",
        needs_counts=True,
        notes=(
            "Needs counts: the engine converts with the request's gain and offset "
            "(counts = (image - offset) / gain); without them the frame is taken to be counts.",
        ),
    ),
    Baseline(
        "vst_bm3d", "VST + BM3D", sbd.vst_bm3d,
        {"gain": 1.0, "offset": 0.0, "sigma": 1.0, "profile": "np"}, "sbd", SEED_SBD,
        "classical-bm3d", "Anscombe VST + BM3D + exact unbiased inverse",
        needs_counts=True,
        notes=(
            "Needs counts: the engine converts with the request's gain and offset "
            "(counts = (image - offset) / gain); without them the frame is taken to be counts.",
            "Slow on CPU (tens of seconds per megapixel).",
        ),
    ),
    Baseline(
        "gaussian_auto", "Gaussian (sigma chosen per frame)", gaussian_auto, {}, "auto", SOURCE_AUTO,
        "classical-auto", "Gaussian blur, sigma chosen per frame without a clean image",
        notes=(
            "Each frame picks its sigma (0.4-8.6 px) by the blind-spot error of the masked Gaussian, which ranks "
            "sigmas like the true error; the mask covers the scan-line neighbours whose noise correlates. "
            "Needs no gain or offset. 'emdenoise adapt' tunes it per dataset (also VST + NLM) with the paired "
            "or thinned error when the data allow.",
            "The default for TEM and an unknown modality since 2026-12-07 (issue 17); STEM and HRTEM have "
            "sim-trained defaults that beat it. Cross-domain HRTEM set (emdenoise bench hrtem-xdomain --models "
            "ede-kernel-tem-7,ede-kernel-temstem-11,classical-auto --baselines gaussian,fourier_wiener "
            "--no-peers): classical-auto 17.65 dB, the previous TEM default ede-kernel-tem-7 -0.11 dB and general"
            " default ede-kernel-temstem-11 1.60 dB (their fixed kernels smooth too little at 0.45 counts/px), "
            "sim-vstunet24d4-hrtem-r1 17.61 dB, tuned Fourier Wiener 18.47 dB. Real HAADF pair: 1.000x the oracle"
            " Gaussian's paired error, ede-kernel-stem-5 1.640x (docs/benchmarks.md). Its sigma adapts to each "
            "frame's dose, which a fixed kernel cannot.",
        ),
        default=True,
        metrics={"bench_adapt_real_pair": {
            "command": "emdenoise bench adapt --pair ../shared/data/serialem_haadf_tilt0_2frames.tif --runs none",
            "data": "real HAADF pair (SerialEM, 7.54 counts/px from the estimated gain/offset), right halves",
            "paired_error_counts2": 0.8020, "oracle_gaussian_paired_error_counts2": 0.8020,
            "ratio_to_oracle": 1.000,
            "note": "unbiased paired error both ways; the oracle is the Gaussian sigma best on the scored halves (1.7 px)",
        }},
    ),
)

BASELINES += (
    Baseline("gaussian", "Gaussian", hrtem.gaussian, {"sigma": 1.0}, "hrtem", SEED_HRTEM,
             notes=("Sigma tuned per benchmark over emdenoise.tuning.GAUSSIAN_SIGMAS.",)),
    Baseline("fourier_wiener", "Fourier Wiener (Kilaas)", hrtem.fourier_wiener,
             {"delta": 1.0, "width": 9, "iterations": 1}, "hrtem", SEED_HRTEM,
             notes=("For crystalline HRTEM: keeps what rises above the smooth background of the amplitude spectrum.",)),
    Baseline("absf", "ABSF (Kilaas)", hrtem.absf, {"delta": 1.0, "width": 9, "iterations": 1}, "hrtem", SEED_HRTEM,
             notes=("Average background subtraction filter for crystalline HRTEM.",)),
)

BY_KEY: dict[str, Baseline] = {b.key: b for b in BASELINES}

#: ``REGISTRY[key](image, **params) -> float32 image``: every classical baseline.
REGISTRY: dict[str, Callable[..., np.ndarray]] = {b.key: b.function for b in BASELINES}


def table_baselines(table: str) -> list[Baseline]:
    """The baselines of one paper's Table 1 (``"ede"`` or ``"sbd"``), in table order."""
    return [b for b in BASELINES if b.table == table]
