"""Contact sheet of a generated data set: clean and noisy images side by side, as PNG."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from emdenoise.simulate.shards import load_shards


def _to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


def _caption(record: dict) -> str:
    kind = record.get("kind")
    if kind == "hrtem":
        return (
            f"#{record['index']} {record['family']} {record['defect']} t={record['support_thickness_nm']:.0f}nm "
            f"df={record['defocus_nm']:.0f}nm tilt={record['tilt_x_deg']:.0f}x{record['tilt_y_deg']:.0f}y {record['contrast']}"
        )
    if kind == "tem-corpus":
        return f"#{record['index']} {record['material']} {record['morphology']} {record['pixel_size_A']:.2f}A/px df={record['defocus_nm']:.0f}nm"
    if kind == "stem":
        return f"#{record['index']} n={record['n_positions']} var={record['variance']:.1f}"
    return f"#{record.get('index')} {kind}"


def contact_sheet(directory: str | Path, out: str | Path, *, count: int = 16, columns: int = 4, tile: int = 256) -> Path:
    """Write a PNG with ``count`` clean/noisy pairs from the data set in ``directory``.

    Each pair is shown as clean (left) and noisy (right), both on the clean image's
    0.5-99.5 percentile grey scale, so the noisy half shows the true dose; for series,
    the first frame is shown. A caption gives the image's main parameters.

    Returns
    -------
    Path of the written PNG.
    """
    items = list(islice(load_shards(directory), count))
    if not items:
        raise ValueError(f"{directory} holds no finished shard to show")
    rows = (len(items) + columns - 1) // columns
    caption_h = 14
    sheet = Image.new("L", (columns * 2 * tile, rows * (tile + caption_h)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, (clean, noisy, record) in enumerate(items):
        if clean.ndim == 3:
            clean, noisy = clean[0], noisy[0]
        lo, hi = np.percentile(clean, [0.5, 99.5])
        pair = np.concatenate([_to_uint8(clean, lo, hi), _to_uint8(noisy, lo, hi)], axis=1)
        img = Image.fromarray(pair).resize((2 * tile, tile), Image.Resampling.NEAREST if clean.shape[0] < tile else Image.Resampling.BILINEAR)
        r, c = divmod(k, columns)
        x, y = c * 2 * tile, r * (tile + caption_h)
        sheet.paste(img, (x, y + caption_h))
        draw.text((x + 2, y + 1), _caption(record), fill=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
