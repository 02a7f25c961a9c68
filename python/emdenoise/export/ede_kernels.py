"""The denoising kernels printed in the appendix of seed 002 (Ede, "Autoencoders, kernels
and multilayer perceptrons for electron micrograph restoration and compression", sec. 6).

The text below is the appendix as printed (TEM, STEM and TEM+STEM; 3x3, 5x5, 7x7, 11x11),
one header line ``<domain> <size>`` per kernel. The kernels were fitted to imitate the
latent-depth-16 autoencoders (sec. 3); their inputs are normalised as the autoencoders'
crops were (sec. 2.2: minimum subtracted, divided by the mean).

Known misprint: the TEM+STEM 11x11 kernel prints "1" in row 2, column 11. Every printed
kernel is symmetric under both mirrors, so :func:`printed_kernels` replaces it with its
mirror image across the vertical axis (row 2, column 1: -0.003) and reports the repair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRINTED_APPENDIX = """\
TEM 3
0.064 0.135 0.064
0.135 0.218 0.135
0.064 0.135 0.064
TEM 5
-0.084 -0.001 0.030 -0.001 -0.084
-0.001 0.107 0.157 0.107 -0.001
0.030 0.157 0.220 0.157 0.030
-0.001 0.107 0.157 0.107 -0.001
-0.084 -0.001 0.030 -0.001 -0.084
TEM 7
-0.039 -0.038 -0.025 -0.018 -0.025 -0.038 -0.039
-0.038 -0.009 0.035 0.058 0.035 -0.009 -0.038
-0.025 0.035 0.114 0.153 0.114 0.035 -0.025
-0.018 0.058 0.153 0.204 0.153 0.058 -0.018
-0.025 0.035 0.114 0.153 0.114 0.035 -0.025
-0.038 -0.009 0.035 0.058 0.035 -0.009 -0.038
-0.039 -0.038 -0.025 -0.018 -0.025 -0.038 -0.039
TEM 11
-0.017 0.000 0.001 -0.005 -0.006 -0.006 -0.006 -0.005 0.001 0.000 -0.017
0.000 0.009 -0.001 -0.013 -0.015 -0.014 -0.015 -0.013 -0.001 0.009 0.000
0.001 -0.001 -0.015 -0.022 -0.010 -0.001 -0.010 -0.022 -0.015 -0.001 0.001
-0.005 -0.013 -0.022 -0.007 0.035 0.059 0.035 -0.007 -0.022 -0.013 -0.005
-0.006 -0.015 -0.010 0.035 0.111 0.152 0.111 0.035 -0.010 -0.015 -0.006
-0.006 -0.014 -0.001 0.059 0.152 0.202 0.152 0.059 -0.001 -0.014 -0.006
-0.006 -0.015 -0.010 0.035 0.111 0.152 0.111 0.035 -0.010 -0.015 -0.006
-0.005 -0.013 -0.022 -0.007 0.035 0.059 0.035 -0.007 -0.022 -0.013 -0.005
0.001 -0.001 -0.015 -0.022 -0.010 -0.001 -0.010 -0.022 -0.015 -0.001 0.001
0.000 0.009 -0.001 -0.013 -0.015 -0.014 -0.015 -0.013 -0.001 0.009 0.000
-0.017 0.000 0.001 -0.005 -0.006 -0.006 -0.006 -0.005 0.001 0.000 -0.017
STEM 3
0.108 0.111 0.108
0.111 0.109 0.111
0.108 0.111 0.108
STEM 5
0.004 0.026 0.040 0.026 0.004
0.026 0.057 0.089 0.057 0.026
0.040 0.089 0.089 0.089 0.040
0.026 0.057 0.089 0.057 0.026
0.004 0.026 0.040 0.026 0.004
STEM 7
-0.016 -0.004 0.007 0.012 0.007 -0.004 -0.016
-0.004 0.007 0.026 0.035 0.026 0.007 -0.004
0.007 0.026 0.057 0.071 0.057 0.026 0.007
0.012 0.035 0.071 0.089 0.071 0.035 0.012
0.007 0.026 0.057 0.071 0.057 0.026 0.007
-0.004 0.007 0.026 0.035 0.026 0.007 -0.004
-0.016 -0.004 0.007 0.012 0.007 -0.004 -0.016
STEM 11
0.012 0.003 -0.001 -0.002 0.000 0.002 0.000 -0.002 -0.001 0.003 0.012
0.003 -0.006 -0.009 -0.007 -0.001 0.005 -0.001 -0.007 -0.009 -0.006 0.003
-0.001 -0.009 -0.010 -0.001 0.007 0.013 0.007 -0.001 -0.010 -0.009 -0.001
-0.002 -0.007 -0.001 0.012 0.029 0.038 0.029 0.012 -0.001 -0.007 -0.002
0.000 -0.001 0.007 0.029 0.055 0.070 0.055 0.029 0.007 -0.001 0.000
0.002 0.005 0.013 0.038 0.070 0.089 0.070 0.038 0.013 0.005 0.002
0.000 -0.001 0.007 0.029 0.055 0.070 0.055 0.029 0.007 -0.001 0.000
-0.002 -0.007 -0.001 0.012 0.029 0.038 0.029 0.012 -0.001 -0.007 -0.002
-0.001 -0.009 -0.010 -0.001 0.007 0.013 0.007 -0.001 -0.010 -0.009 -0.001
0.003 -0.006 -0.009 -0.007 -0.001 0.005 -0.001 -0.007 -0.009 -0.006 0.003
0.012 0.003 -0.001 -0.002 0.000 0.002 0.000 -0.002 -0.001 0.003 0.012
TEM+STEM 3
0.093 0.124 0.093
0.124 0.149 0.124
0.093 0.124 0.093
TEM+STEM 5
-0.061 0.016 0.042 0.016 -0.061
0.016 0.091 0.116 0.091 0.016
0.042 0.116 0.142 0.116 0.042
0.016 0.091 0.116 0.091 0.016
-0.061 0.016 0.042 0.016 -0.061
TEM+STEM 7
-0.077 -0.037 -0.008 0.001 -0.008 -0.037 -0.077
-0.037 0.016 0.052 0.063 0.052 0.016 -0.037
-0.008 0.052 0.095 0.110 0.095 0.052 -0.008
0.001 0.063 0.110 0.127 0.110 0.063 0.001
-0.008 0.052 0.095 0.110 0.095 0.052 -0.008
-0.037 0.016 0.052 0.063 0.052 0.016 -0.037
-0.077 -0.037 -0.008 0.001 -0.008 -0.037 -0.077
TEM+STEM 11
0.005 -0.003 -0.015 -0.022 -0.019 0.017 -0.019 -0.022 -0.015 -0.003 0.005
-0.003 -0.008 -0.013 -0.013 -0.004 0.001 -0.004 -0.013 -0.013 -0.008 1
-0.015 -0.013 -0.011 -0.001 0.017 0.025 0.017 -0.001 -0.011 -0.013 -0.015
-0.022 -0.013 -0.001 0.021 0.050 0.062 0.050 0.021 -0.001 -0.013 -0.022
-0.019 -0.004 0.017 0.050 0.088 0.105 0.088 0.050 0.017 -0.004 -0.019
0.017 0.001 0.025 0.062 0.105 0.123 0.105 0.062 0.025 0.001 0.017
-0.019 -0.004 0.017 0.050 0.088 0.105 0.088 0.050 0.017 -0.004 -0.019
-0.022 -0.013 -0.001 0.021 0.050 0.062 0.050 0.021 -0.001 -0.013 -0.022
-0.015 -0.013 -0.011 -0.001 0.017 0.025 0.017 -0.001 -0.011 -0.013 -0.015
-0.003 -0.008 -0.013 -0.013 -0.004 0.001 -0.004 -0.013 -0.013 -0.008 -0.003
0.005 -0.003 -0.015 -0.022 -0.019 0.017 -0.019 -0.022 -0.015 -0.003 0.005
"""

DOMAINS = {"TEM": "tem", "STEM": "stem", "TEM+STEM": "temstem"}


@dataclass(frozen=True)
class PrintedKernel:
    """One appendix kernel: ``domain`` (TEM, STEM, TEM+STEM), weights and repairs made."""

    domain: str
    weights: np.ndarray
    repairs: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return int(self.weights.shape[0])


def _parse(text: str) -> list[tuple[str, np.ndarray]]:
    kernels = []
    lines = [line.split() for line in text.strip().splitlines()]
    row = 0
    while row < len(lines):
        domain, size = lines[row][0], int(lines[row][1])
        values = np.array(lines[row + 1 : row + 1 + size], dtype=np.float64)
        kernels.append((domain, values))
        row += 1 + size
    return kernels


def _repair_misprints(domain: str, weights: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Replace entries that break the kernels' mirror symmetry by their mirror image."""
    mirrored = weights[:, ::-1]
    suspicious = np.argwhere(~np.isclose(weights, mirrored, atol=1e-9) & (np.abs(weights) > 0.5))
    repairs = []
    weights = weights.copy()
    for y, x in suspicious:
        printed, value = weights[y, x], mirrored[y, x]
        weights[y, x] = value
        repairs.append(
            f"{domain} {weights.shape[0]}x{weights.shape[1]}: row {y + 1}, column {x + 1} is printed "
            f"as {printed:g}; replaced by its mirror value {value:g} (the kernels are symmetric)"
        )
    return weights, tuple(repairs)


def printed_kernels() -> list[PrintedKernel]:
    """All twelve appendix kernels, misprints repaired (seed 002, sec. 6).

    Returns
    -------
    list of PrintedKernel
        In appendix order: TEM, STEM, TEM+STEM; sizes 3, 5, 7, 11.
    """
    kernels = []
    for domain, weights in _parse(PRINTED_APPENDIX):
        weights, repairs = _repair_misprints(domain, weights)
        kernels.append(PrintedKernel(domain, weights.astype(np.float32), repairs))
    return kernels
