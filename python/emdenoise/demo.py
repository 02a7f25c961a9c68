"""``emdenoise demo``: denoise the bundled sample with the embedded engine and show it.

The sample is a crop of a real HAADF-STEM image of SrTiO3 (see data/NOTICE_sample.txt).
Writes the denoised TIFF and a side-by-side PNG (raw | denoised | residual).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
from PIL import Image

from emdenoise.client import EmbeddedClient
from emdenoise.workflow import denoise_file, output_path_for
from emdenoise.io.tiff import read_tiff

SAMPLE_NAME = "sample_srtio3_haadf.tif"


def sample_path() -> Path:
    """Path of the bundled sample micrograph."""
    return Path(str(importlib.resources.files("emdenoise") / "data" / SAMPLE_NAME))


def to_8bit(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear contrast stretch of ``image`` from [low, high] to 0-255."""
    scaled = (image.astype(np.float64) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def side_by_side(raw: np.ndarray, denoised: np.ndarray, path: Path) -> Path:
    """Save raw | denoised | residual (raw - denoised) as one PNG, shared contrast for the first two."""
    low, high = np.percentile(raw, [0.5, 99.5])
    residual = raw.astype(np.float64) - denoised
    spread = np.percentile(np.abs(residual), 99.5) or 1.0
    gap = np.full((raw.shape[0], 8), 255, np.uint8)
    panels = [to_8bit(raw, low, high), gap, to_8bit(denoised, low, high), gap, to_8bit(residual, -spread, spread)]
    Image.fromarray(np.hstack(panels)).save(path)
    return path


def run_demo(output_dir: Path, *, model_id: str | None = None, overwrite: bool = False, device: str = "auto") -> tuple[Path, Path]:
    """Denoise the sample into ``output_dir``; returns (tiff, png)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    source = sample_path()
    client = EmbeddedClient(device=device)
    chosen = model_id or client.engine.card(None, modality="stem").id
    tiff_path = output_path_for(source, output_dir, chosen, single=False)
    png_path = tiff_path.with_suffix(".png")
    if png_path.exists() and not overwrite:
        from emdenoise.errors import UserError

        raise UserError(f"{png_path} already exists; pass --overwrite or choose another -o folder.")
    denoise_file(client, source, tiff_path, model_id=chosen, overwrite=overwrite)
    raw, _ = read_tiff(source)
    denoised, _ = read_tiff(tiff_path)
    side_by_side(raw, denoised, png_path)
    return tiff_path, png_path
