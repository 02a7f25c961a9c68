"""PNG figures of benchmark runs.

KDE curves (seed 001, Fig. 4) need matplotlib (the ``bench`` extra); image montages are
drawn with Pillow, which the package always has.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw


def kde_curves(
    samples: Mapping[str, Sequence[float]], grid: np.ndarray
) -> dict[str, np.ndarray]:
    """Gaussian KDE (Scott's rule bandwidth) of each sample set on ``grid``, scaled jointly.

    As in seed 001 (sec. 4.1): the curves of one figure are divided by the largest value
    among them, so the highest peak is 1. Sets with fewer than two distinct values have no
    density and are left out.

    Returns
    -------
    dict of str to ndarray
    """
    from scipy.stats import gaussian_kde

    curves = {}
    for name, values in samples.items():
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size < 2 or np.ptp(arr) == 0:
            continue
        curves[name] = gaussian_kde(arr, bw_method="scott")(grid)
    top = max((float(c.max()) for c in curves.values()), default=0.0)
    if top > 0:
        curves = {k: v / top for k, v in curves.items()}
    return curves


def kde_figure(
    path: Path,
    samples: Mapping[str, Sequence[float]],
    *,
    grid: np.ndarray,
    xlabel: str,
    title: str,
    xscale: float = 1.0,
) -> Path | None:
    """Write a Fig. 4 style KDE plot to ``path``; None (with a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed, so KDE plots were skipped: pip install 'emdenoise[bench]'.")
        return None
    curves = kde_curves(samples, grid)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, curve in curves.items():
        ax.plot(grid * xscale, curve, label=name, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("scaled density")
    ax.set_title(title)
    ax.set_xlim(grid[0] * xscale, grid[-1] * xscale)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _to_uint8(image: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    data = np.asarray(image, dtype=np.float64)
    lo = float(data.min()) if lo is None else lo
    hi = float(data.max()) if hi is None else hi
    if hi <= lo:
        return np.zeros(data.shape, dtype=np.uint8)
    return (np.clip((data - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def montage(
    path: Path,
    panels: Mapping[str, np.ndarray],
    *,
    shared_range: tuple[float, float] | None = None,
    columns: int = 4,
    tile: int = 256,
    clahe: bool = False,
) -> Path:
    """Write labelled greyscale panels side by side as one PNG.

    Parameters
    ----------
    path : Path
        Output file.
    panels : mapping of label to 2D array
        Images to show, in order.
    shared_range : (lo, hi), optional
        One display range for every panel (e.g. to compare restorations); each panel is
        stretched to its own min-max when omitted (e.g. for error maps).
    columns : int
        Panels per row.
    tile : int
        Side of each panel in pixels (nearest-neighbour resize).
    clahe : bool
        Contrast-limited adaptive histogram equalisation of each panel, as seed 001 used
        to reveal structure in its error maps (Fig. 5).
    """
    label_h = 16
    names = list(panels)
    rows = (len(names) + columns - 1) // columns
    sheet = Image.new("L", (columns * tile, rows * (tile + label_h)), color=255)
    draw = ImageDraw.Draw(sheet)
    for k, name in enumerate(names):
        lo, hi = shared_range if shared_range else (None, None)
        pixels = _to_uint8(panels[name], lo, hi)
        if clahe:
            from skimage.exposure import equalize_adapthist

            pixels = (equalize_adapthist(pixels) * 255).astype(np.uint8)
        img = Image.fromarray(pixels).resize((tile, tile), Image.NEAREST)
        x, y = (k % columns) * tile, (k // columns) * (tile + label_h)
        sheet.paste(img, (x, y + label_h))
        draw.text((x + 3, y + 2), name[:40], fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
