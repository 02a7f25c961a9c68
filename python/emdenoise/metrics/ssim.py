"""SSIM as each seed computes it (scikit-image's ``structural_similarity``)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from emdenoise.errors import InvalidInput


def ssim_ede(output: np.ndarray, truth: np.ndarray) -> float:
    """SSIM as in seed 001's benchmark (released ``apply_filters.py``).

    scikit-image defaults (7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03)
    with ``data_range = output.max() - output.min()``, the range of the *restored* image;
    when that range is 0 (a constant output) the truth's range is used instead.

    Returns
    -------
    float
    """
    x = np.asarray(output, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    rng = float(x.max() - x.min()) or float(y.max() - y.min())
    if rng == 0:
        raise InvalidInput("Both images are constant, so SSIM is undefined; use images with structure.")
    return float(structural_similarity(x, y, data_range=rng))


def ssim_sbd(output: np.ndarray, truth: np.ndarray) -> float:
    """SSIM as Wang et al. (2004) define it, which seed 003 cites.

    11x11 Gaussian window with sigma 1.5, population covariance, K1 = 0.01, K2 = 0.03 and
    ``data_range`` = the clean image's range (the paper gives no code; these are the
    settings of the reference it cites).

    Returns
    -------
    float
    """
    x = np.asarray(output, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    rng = float(y.max() - y.min())
    if rng == 0:
        raise InvalidInput("The clean image is constant, so SSIM is undefined; use images with structure.")
    return float(
        structural_similarity(
            x, y, data_range=rng, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )
