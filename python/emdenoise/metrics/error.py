"""Error measures: MSE, PSNR, mean absolute error maps, and the paired-frame estimate."""

from __future__ import annotations

import numpy as np

from emdenoise.errors import InvalidInput


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InvalidInput(f"Images differ in shape ({x.shape} vs {y.shape}); compare images of one size.")
    return x, y


def mse(output: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error ``mean((output - truth)^2)`` in the images' units."""
    x, y = _pair(output, truth)
    return float(np.mean((x - y) ** 2))


def psnr(output: np.ndarray, truth: np.ndarray, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    output, truth : ndarray
        Restored and clean images.
    data_range : float, optional
        Peak value; SBD (seed 003) uses the clean image's range ``max - min``, the
        default here.

    Returns
    -------
    float
        ``inf`` for a perfect restoration.
    """
    x, y = _pair(output, truth)
    peak = float(y.max() - y.min()) if data_range is None else float(data_range)
    if peak <= 0:
        raise InvalidInput("The clean image is constant, so PSNR is undefined; pass data_range.")
    err = float(np.mean((x - y) ** 2))
    return float("inf") if err == 0 else float(10.0 * np.log10(peak**2 / err))


class MeanAbsErrorMap:
    """Running per-pixel mean absolute error over many restorations (seed 001, Fig. 5).

    Examples
    --------
    >>> import numpy as np
    >>> acc = MeanAbsErrorMap()
    >>> acc.add(np.ones((2, 2)), np.zeros((2, 2)))
    >>> acc.add(np.zeros((2, 2)), np.zeros((2, 2)))
    >>> float(acc.map()[0, 0])
    0.5
    """

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self.count = 0

    def add(self, output: np.ndarray, truth: np.ndarray) -> None:
        """Accumulate ``|output - truth|`` of one restoration."""
        x, y = _pair(output, truth)
        err = np.abs(x - y)
        if self._sum is None:
            self._sum = np.zeros_like(err)
        elif self._sum.shape != err.shape:
            raise InvalidInput(
                f"Error map of shape {err.shape} cannot join maps of shape {self._sum.shape}; "
                "use crops of one size."
            )
        self._sum += err
        self.count += 1

    def map(self) -> np.ndarray:
        """The per-pixel mean absolute error so far (float64)."""
        if self._sum is None:
            raise InvalidInput("No restorations were added to the error map.")
        return self._sum / self.count


def paired_frame_mse(denoised_a: np.ndarray, frame_b: np.ndarray) -> float:
    """Unbiased MSE estimate of a restoration from a second noisy frame, in counts^2.

    For two frames ``A`` and ``B`` of the same field with independent Poisson noise,
    ``E[(f(A) - B)^2] = E[(f(A) - x)^2] + E[(B - x)^2]`` and ``E[(B - x)^2] = x`` per pixel,
    so ``mean((f(A) - B)^2) - mean(B)`` estimates ``mean((f(A) - x)^2)`` without the clean
    image ``x``. Both arguments must be in counts (subtract offset, divide by gain).

    Parameters
    ----------
    denoised_a : ndarray
        Restoration of frame A, in counts.
    frame_b : ndarray
        The raw second frame, in counts.

    Returns
    -------
    float
        Estimated MSE in counts^2 (can come out slightly negative for a near-perfect
        restoration, as an unbiased estimate may).
    """
    x, y = _pair(denoised_a, frame_b)
    return float(np.mean((x - y) ** 2) - np.mean(y))
