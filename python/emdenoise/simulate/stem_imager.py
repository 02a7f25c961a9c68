"""Training images for the sim-trained STEM denoiser: a scene, then a scan (issue 17, item 2).

:class:`StemImager` has the interface the HRTEM exit-wave imager has
(``sample(rng, size) -> clean, noisy, params``), so one training loop serves both. Every
image is new: a scene from :mod:`.stem_scenes`, recorded by :mod:`.stem_scan`, in
noise-equivalent counts. Nothing is cached, nothing is slow: about 10 ms per 128x128
image on one core.
"""

from __future__ import annotations

import numpy as np

from emdenoise.simulate.stem_scan import ScanConfig, noise_correlation, line_filter, sample_scan_params, scan
from emdenoise.simulate.stem_scenes import stem_scene

#: Extra columns simulated on the left and cut off, so the causal line filter and the
#: line jitter never see an edge.
_MARGIN = 8


class StemImager:
    """Draw (clean, noisy) HAADF-STEM training images.

    Parameters
    ----------
    config : ScanConfig
        Ranges of the scan parameters.
    families : sequence of str, optional
        Restrict the scene families (default: all of :data:`.stem_scenes.FAMILIES`).
    """

    modality = "stem"

    def __init__(self, config: ScanConfig = ScanConfig(), families=None):
        self.config = config
        self.families = tuple(families) if families else None

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """One image of ``size`` x ``size`` pixels.

        Returns
        -------
        clean : ndarray, float32
            Expected noise-equivalent counts.
        noisy : ndarray, float32
            The recording.
        params : dict
            Scene family, dose and scan parameters, and the lag-1 noise correlation.
        """
        family = str(rng.choice(self.families)) if self.families else None
        scene, scene_params = stem_scene(rng, (size + _MARGIN, size + 2 * _MARGIN), family)
        params = sample_scan_params(rng, self.config)
        clean, noisy = scan(scene, params, rng)
        taps = line_filter(params["filter_first_tap"], params["filter_decay"])
        window = (slice(_MARGIN // 2, _MARGIN // 2 + size), slice(_MARGIN, _MARGIN + size))
        info = {**scene_params, **params, "noise_correlation_lag1": noise_correlation(taps, 1)}
        return clean[window], noisy[window], info
