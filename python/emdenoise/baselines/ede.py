"""The classical denoisers of Ede & Beanland's Table 1 (seed 001, sec. 4.1).

Each function takes one 2D frame in any intensity units, maps it to [0, 1] (min-max, the
scale on which the paper ran every filter, sec. 3.1), applies the library call the paper
names with the paper's parameters, and maps the result back to the input's units. The
library calls match the authors' released ``apply_filters.py``. Outputs are float32.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.signal import wiener as _scipy_wiener
from skimage.restoration import (
    denoise_nl_means,
    denoise_tv_bregman,
    denoise_tv_chambolle,
    denoise_wavelet,
)

from emdenoise.baselines._frame import as_frame, on_unit_range
from emdenoise.errors import InvalidInput


def unfiltered(image: np.ndarray) -> np.ndarray:
    """Return the frame unchanged as float32: the "Unfiltered" row of seed 001, Table 1."""
    return as_frame(image).astype(np.float32)


def gaussian_3x3(image: np.ndarray, *, ksize: int = 3, sigma: float = 0.0) -> np.ndarray:
    """OpenCV Gaussian blur with a 3x3 kernel (seed 001, sec. 4.1, "Gaussian filter").

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    ksize : int
        Odd kernel side (3 in the paper).
    sigma : float
        Standard deviation; 0 lets OpenCV choose. For ``ksize <= 7`` and ``sigma <= 0``
        OpenCV uses its fixed binomial kernels, i.e. ``[1, 2, 1] / 4`` for 3x3 (not a
        sampled Gaussian of its rule-of-thumb sigma 0.8), applied separably with
        reflect-101 borders.

    Returns
    -------
    ndarray of float32
    """
    if ksize < 1 or ksize % 2 == 0:
        raise InvalidInput(f"Gaussian kernel size must be a positive odd integer, got {ksize}.")
    return on_unit_range(image, lambda u: cv2.GaussianBlur(u, (ksize, ksize), sigma))


def bilateral(
    image: np.ndarray, *, d: int = 9, sigma_color: float = 75.0, sigma_space: float = 75.0
) -> np.ndarray:
    """OpenCV bilateral filter, 9 px neighbourhood, scales 75/75 (seed 001, sec. 4.1).

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    d : int
        Neighbourhood diameter; OpenCV averages over the disc of radius ``d // 2``.
    sigma_color, sigma_space : float
        Radiometric and spatial scales. As in the paper, ``sigma_color`` applies to the
        [0, 1] frame, where 75 makes the range kernel flat: the filter is then a 49-pixel
        disc average with nearly uniform weights, which is why it blurs so much in Table 1.
        Use ``sigma_color`` around 0.1 for an edge-preserving filter on [0, 1] data.

    Returns
    -------
    ndarray of float32
    """
    if d < 1:
        raise InvalidInput(f"Bilateral neighbourhood diameter must be >= 1, got {d}.")
    return on_unit_range(image, lambda u: cv2.bilateralFilter(u, d, sigma_color, sigma_space))


def median_3x3(image: np.ndarray, *, ksize: int = 3) -> np.ndarray:
    """OpenCV 3x3 median filter (seed 001, sec. 4.1, "Median filter").

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    ksize : {3, 5}
        Aperture; OpenCV supports only 3 and 5 for float32 frames. Borders replicate.

    Returns
    -------
    ndarray of float32
    """
    if ksize not in (3, 5):
        raise InvalidInput(f"Median aperture must be 3 or 5 for float frames, got {ksize}.")
    return on_unit_range(image, lambda u: cv2.medianBlur(u, ksize))


def wiener(image: np.ndarray, *, mysize: int = 3, noise: float | None = None) -> np.ndarray:
    """SciPy Wiener filter with its defaults (seed 001, sec. 4.1, "Wiener").

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    mysize : int
        Window side (SciPy default 3).
    noise : float, optional
        Noise power on the [0, 1] scale; SciPy estimates it as the mean local variance.

    Returns
    -------
    ndarray of float32
        SciPy pads with zeros, so the outermost ``mysize // 2`` pixels are darkened,
        exactly as in the paper's benchmark.
    """
    def filt(unit: np.ndarray) -> np.ndarray:
        # Flat windows have zero local variance; SciPy then divides by zero but selects
        # the local mean there, so the warning carries no information.
        with np.errstate(divide="ignore", invalid="ignore"):
            return _scipy_wiener(unit.astype(np.float64), mysize, noise)

    return on_unit_range(image, filt)


def wavelet_bayesshrink(
    image: np.ndarray, *, wavelet: str = "db1", mode: str = "soft", wavelet_levels: int | None = None
) -> np.ndarray:
    """scikit-image BayesShrink wavelet soft-thresholding (seed 001, sec. 4.1, "Wavelet").

    The noise standard deviation is estimated from the finest diagonal detail
    coefficients by the median absolute deviation (Donoho & Johnstone), as the paper says.

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    wavelet : str
        PyWavelets name (scikit-image default ``"db1"``).
    mode : {"soft", "hard"}
        Thresholding mode (``"soft"`` in the paper).
    wavelet_levels : int, optional
        Decomposition levels; scikit-image's default is three fewer than the maximum.

    Returns
    -------
    ndarray of float32
    """
    return on_unit_range(
        image,
        lambda u: denoise_wavelet(
            u.astype(np.float64),
            wavelet=wavelet,
            mode=mode,
            wavelet_levels=wavelet_levels,
            method="BayesShrink",
            rescale_sigma=True,
        ),
    )


def tv_chambolle(
    image: np.ndarray, *, weight: float = 0.1, eps: float = 2.0e-4, max_num_iter: int = 200
) -> np.ndarray:
    """scikit-image Chambolle total-variation denoising (seed 001, sec. 4.1).

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    weight : float
        Denoising weight on the [0, 1] scale (0.1, scikit-image's default); larger is
        smoother.
    eps : float
        Stop when the relative change of the cost is below ``eps`` (2e-4 in the paper).
    max_num_iter : int
        At most this many iterations (200 in the paper).

    Returns
    -------
    ndarray of float32
    """
    return on_unit_range(
        image,
        lambda u: denoise_tv_chambolle(
            u.astype(np.float64), weight=weight, eps=eps, max_num_iter=max_num_iter
        ),
    )


def tv_bregman(
    image: np.ndarray,
    *,
    weight: float = 0.1,
    eps: float = 2.0e-4,
    max_num_iter: int = 200,
    isotropic: bool = False,
) -> np.ndarray:
    """scikit-image split-Bregman anisotropic TV denoising (seed 001, sec. 4.1).

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    weight : float
        scikit-image's Bregman weight is a data-fidelity weight: *smaller is smoother*.
        0.1 (the paper's value, far below scikit-image's default 5) smooths strongly.
    eps, max_num_iter : float, int
        Stop at relative change ``eps`` (2e-4) or after ``max_num_iter`` (200) iterations.
    isotropic : bool
        False: anisotropic TV, as in the paper and the released script.

    Returns
    -------
    ndarray of float32
    """
    return on_unit_range(
        image,
        lambda u: denoise_tv_bregman(
            u.astype(np.float64),
            weight=weight,
            max_num_iter=max_num_iter,
            eps=eps,
            isotropic=isotropic,
        ),
    )


def nl_means(
    image: np.ndarray,
    *,
    patch_size: int = 7,
    patch_distance: int = 11,
    h: float = 0.1,
    fast_mode: bool = True,
) -> np.ndarray:
    """scikit-image non-local means with its defaults (seed 001, sec. 4.1, "NL means").

    Parameters
    ----------
    image : ndarray
        2D frame, any units.
    patch_size, patch_distance : int
        Patch side and search radius (scikit-image defaults 7 and 11).
    h : float
        Patch-distance cut-off on the [0, 1] scale (default 0.1).
    fast_mode : bool
        scikit-image's fast (uniform patch weights) variant, its default.

    Returns
    -------
    ndarray of float32
    """
    return on_unit_range(
        image,
        lambda u: denoise_nl_means(
            u.astype(np.float64),
            patch_size=patch_size,
            patch_distance=patch_distance,
            h=h,
            fast_mode=fast_mode,
        ),
    )
