"""Image-quality measures of the seed papers.

* :func:`mse`, :func:`psnr` (SBD: peak = clean image's range), :class:`MeanAbsErrorMap`
  (Ede Fig. 5);
* :func:`ssim_ede` (seed 001's benchmark settings), :func:`ssim_sbd` (Wang et al. 2004);
* :func:`css` (Noise2Atom eq. 10) with :class:`SharedScaling`;
* :func:`paired_frame_mse`: ``mean((f(A) - B)^2) - mean(B)`` in counts, an unbiased error
  estimate from two frames with independent noise, no ground truth needed.
"""

from emdenoise.metrics.css import C1, C2, SharedScaling, css
from emdenoise.metrics.error import MeanAbsErrorMap, mse, paired_frame_mse, psnr
from emdenoise.metrics.ssim import ssim_ede, ssim_sbd

__all__ = [
    "C1",
    "C2",
    "MeanAbsErrorMap",
    "SharedScaling",
    "css",
    "mse",
    "paired_frame_mse",
    "psnr",
    "ssim_ede",
    "ssim_sbd",
]
