"""From a clean HAADF scene to the counts a real scan records (issue 17, item 2).

The artefacts of real scans, as measured on the SerialEM HAADF pair of ``../shared/data``
(noise correlated along the scan line: lag 1/2/3 correlations 0.51/0.17/0.07, none across
lines) and listed in issue 17:

1. **probe**: a Gaussian blur of the scene (sub-pixel to a few pixels);
2. **line jitter**: each scan line shifted along x by a smooth random offset (AR(1) over
   lines), the "scan noise" abTEM also models;
3. **shot noise**: electrons per dwell ``n ~ Poisson(lambda)``;
4. **detector / amplifier bandwidth**: a causal filter ``h`` along the fast scan
   direction mixes each pixel with the previous ones, which correlates the noise along x
   and blurs the signal the same way;
5. **line flicker and read noise**: a small per-line gain change and additive Gaussian noise.

The result is given in *noise-equivalent counts*, the units the project's gain/offset
estimate (:func:`emdenoise.noise.calibration.estimate_counts`) produces: divided by
``sum(h^2)``, so the noise variance equals the mean. ``clean`` is the expectation of
``noisy`` (filter and jitter included), which is what a paired error against a second
frame measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class ScanConfig:
    """Ranges the scan parameters are drawn from (uniform unless said otherwise).

    Attributes
    ----------
    dose : (float, float)
        Mean noise-equivalent counts per pixel, drawn log-uniform.
    probe_sigma_px : (float, float)
        Standard deviation of the probe blur [px].
    filter_first_tap, filter_decay : (float, float)
        ``h = [1, a, a r, a r^2, a r^3] / sum``: ``a`` from the first, ``r`` from the
        second range; ``a = 0`` is an uncorrelated detector. Half of the draws use a = 0.
    jitter_px : (float, float)
        Standard deviation of the line offsets [px]; applied to half of the draws.
    jitter_correlation : (float, float)
        AR(1) coefficient of the offsets from line to line.
    flicker : (float, float)
        Standard deviation of the relative per-line gain.
    read_noise : (float, float)
        Standard deviation of additive Gaussian noise [counts].
    """

    dose: tuple = (0.3, 60.0)
    probe_sigma_px: tuple = (0.3, 1.5)
    filter_first_tap: tuple = (0.0, 0.9)
    filter_decay: tuple = (0.1, 0.6)
    jitter_px: tuple = (0.0, 0.6)
    jitter_correlation: tuple = (0.0, 0.9)
    flicker: tuple = (0.0, 0.02)
    read_noise: tuple = (0.0, 0.3)

    def as_dict(self) -> dict:
        """The configuration as a JSON-serialisable dict."""
        return asdict(self)


def line_filter(first_tap: float, decay: float) -> np.ndarray:
    """The causal scan-line filter ``[1, a, a r, a r^2, a r^3]`` normalised to sum 1."""
    taps = np.array([1.0] + [first_tap * decay**k for k in range(4)])
    return taps / taps.sum()


def noise_correlation(taps: np.ndarray, lag: int) -> float:
    """Correlation of the filtered noise at ``lag`` pixels along the line."""
    if lag >= taps.size:
        return 0.0
    return float(np.dot(taps[:-lag] if lag else taps, taps[lag:]) / np.dot(taps, taps))


def _filter_lines(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Causal filtering along x: ``out[:, x] = sum_k taps[k] image[:, x - k]`` (edge repeated)."""
    pad = taps.size - 1
    padded = np.pad(image, ((0, 0), (pad, 0)), mode="edge")
    out = np.zeros_like(image)
    for k, tap in enumerate(taps):
        out += tap * padded[:, pad - k: pad - k + image.shape[1]]
    return out


def _shift_lines(image: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift each row by its own sub-pixel offset (linear interpolation, edge repeated)."""
    cols = np.arange(image.shape[1])[None, :] - shifts[:, None]
    cols = np.clip(cols, 0, image.shape[1] - 1)
    left = np.floor(cols).astype(int)
    right = np.minimum(left + 1, image.shape[1] - 1)
    frac = cols - left
    rows = np.arange(image.shape[0])[:, None]
    return image[rows, left] * (1 - frac) + image[rows, right] * frac


def sample_scan_params(rng: np.random.Generator, config: ScanConfig = ScanConfig()) -> dict:
    """Draw one scan's parameters from ``config``."""
    def uniform(bounds):
        return float(rng.uniform(*bounds))

    correlated = rng.random() < 0.5
    jittered = rng.random() < 0.5
    return {
        "dose": float(np.exp(rng.uniform(np.log(config.dose[0]), np.log(config.dose[1])))),
        "probe_sigma_px": uniform(config.probe_sigma_px),
        "filter_first_tap": uniform(config.filter_first_tap) if correlated else 0.0,
        "filter_decay": uniform(config.filter_decay),
        "jitter_px": uniform(config.jitter_px) if jittered else 0.0,
        "jitter_correlation": uniform(config.jitter_correlation),
        "flicker": uniform(config.flicker),
        "read_noise": uniform(config.read_noise),
    }


def scan(scene: np.ndarray, params: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Record ``scene`` (mean ~1) with the scan ``params``.

    Parameters
    ----------
    scene : ndarray, (H, W)
        Clean HAADF density, >= 0. Give a few pixels more on the left than you keep: the
        causal filter repeats the first column.
    params : dict
        From :func:`sample_scan_params`.
    rng : numpy.random.Generator
        Drives jitter, flicker and noise.

    Returns
    -------
    clean : ndarray, float32
        Expected noise-equivalent counts (mean ``params['dose']`` for a mean-1 scene).
    noisy : ndarray, float32
        One recording, same units.
    """
    height = scene.shape[0]
    image = ndimage.gaussian_filter(scene.astype(np.float64), params["probe_sigma_px"], mode="reflect")
    if params["jitter_px"] > 0:
        rho = params["jitter_correlation"]
        steps = rng.normal(0, params["jitter_px"] * np.sqrt(1 - rho**2), height)
        shifts = np.empty(height)
        shifts[0] = rng.normal(0, params["jitter_px"])
        for i in range(1, height):
            shifts[i] = rho * shifts[i - 1] + steps[i]
        image = _shift_lines(image, shifts)
    image *= 1.0 + params["flicker"] * rng.normal(size=(height, 1))
    taps = line_filter(params["filter_first_tap"], params["filter_decay"])
    power = float(np.dot(taps, taps))
    rate = np.clip(image, 0.0, None) * params["dose"] * power
    electrons = rng.poisson(rate).astype(np.float64)
    noisy = _filter_lines(electrons, taps) / power
    clean = _filter_lines(rate, taps) / power
    if params["read_noise"] > 0:
        noisy += rng.normal(0, params["read_noise"], noisy.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)
