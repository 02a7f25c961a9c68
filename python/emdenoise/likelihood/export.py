"""Files of a likelihood map: float map (TIFF), overlay and preview (PNG), region table (CSV)
and ImageJ ROIs coloured by LLR (``roifile``), for the CLI and the Fiji command.
"""

from __future__ import annotations

import csv
import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from emdenoise.errors import UserError
from emdenoise.likelihood.compute import VACUUM_LABEL, LikelihoodResult, Region
from emdenoise.likelihood.overlay import colour_limit, overlay_rgba, preview_rgb, region_rgba

TABLE_COLUMNS = tuple(f.name for f in fields(Region)) + ("decision", "supported")


def region_rows(result: LikelihoodResult) -> list[dict]:
    """The region table as dictionaries (``TABLE_COLUMNS``), one per column region."""
    return [
        {**{name: getattr(r, name) for name in TABLE_COLUMNS[:-2]}, "decision": r.decision, "supported": r.supported}
        for r in result.regions
    ]


def write_table(path: str | os.PathLike, result: LikelihoodResult) -> Path:
    """Write the region table as CSV (centre, radius, pixels, intensities, LLR, supported).

    Coordinates are in pixels, row/col from the top-left pixel's centre; intensities in
    counts per pixel (seed 003, sec. 3).
    """
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        for row in region_rows(result):
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def _argb(rgba: tuple[int, int, int, int]) -> bytes:
    red, green, blue, alpha = rgba
    return bytes((alpha, red, green, blue))


def region_rois(result: LikelihoodResult, *, limit: float | None = None, vacuum: bool = True) -> list:
    """ImageJ ROIs: one oval per column region coloured like the overlay, plus the vacuum outline.

    Each oval is named ``col-NNNN LLR=+x.xx`` and carries its table row as ROI properties
    (ImageJ: ``Roi.getProperty("llr")``), so the ROI Manager lists and colours the
    columns by their support.
    """
    from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi

    limit = colour_limit(result.llr_map) if limit is None else limit
    rois = []
    for region in result.regions:
        value = region.llr_per_pixel if result.map_units == "per-pixel" else region.llr
        r = region.radius
        x, y = region.col + 0.5 - r, region.row + 0.5 - r  # ImageJ: pixel i spans [i, i + 1)
        roi = ImagejRoi(
            roitype=ROI_TYPE.OVAL,
            options=ROI_OPTIONS.SUB_PIXEL_RESOLUTION,
            version=228,
            name=f"col-{region.id:04d} LLR={region.llr:+.2f}",
            left=int(np.floor(x)), top=int(np.floor(y)),
            right=int(np.ceil(x + 2 * r)), bottom=int(np.ceil(y + 2 * r)),
            xd=x, yd=y, widthd=2 * r, heightd=2 * r,
            stroke_color=_argb(region_rgba(value, limit, min_alpha=1.0, max_alpha=1.0)),
            stroke_width=1,
        )
        roi.properties = {
            "llr": f"{region.llr:.6g}", "llr_per_pixel": f"{region.llr_per_pixel:.6g}",
            "intensity": f"{region.intensity:.6g}", "observed": f"{region.observed:.6g}",
            "pixels": region.pixels, "supported": region.supported, "decision": region.decision,
            "power": f"{region.power:.4g}",
        }
        rois.append(roi)
    if vacuum:
        rois += _vacuum_rois(result.labels == VACUUM_LABEL, result.vacuum_level)
    return rois


def _vacuum_rois(mask: np.ndarray, level: float) -> list:
    from roifile import ImagejRoi
    from skimage.measure import approximate_polygon, find_contours

    rois = []
    padded = np.pad(mask.astype(np.float32), 1)
    for index, contour in enumerate(find_contours(padded, 0.5), start=1):
        contour = approximate_polygon(contour - 1.0, tolerance=1.0)
        if len(contour) < 4:
            continue
        roi = ImagejRoi.frompoints(contour[:, ::-1] + 0.5, name=f"vacuum-{index} {level:.3g} counts/px")
        roi.stroke_color = _argb((40, 170, 60, 255))
        rois.append(roi)
    return rois


def write_rois(path: str | os.PathLike, result: LikelihoodResult, *, limit: float | None = None) -> Path | None:
    """Write the ROIs as an ImageJ ROI set (``.zip``, opened by the ROI Manager); None when empty."""
    from roifile import roiwrite

    rois = region_rois(result, limit=limit)
    if not rois:
        return None
    path = Path(path)
    if path.exists():
        path.unlink()  # roiwrite appends to an existing zip
    roiwrite(path, rois, name=[roi.name for roi in rois])
    return path


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> Path:
    """Write an RGB or RGBA uint8 image as PNG (Pillow)."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return path


def write_outputs(
    result: LikelihoodResult,
    output: str | os.PathLike,
    stem: str,
    *,
    metadata=None,
    provenance: dict[str, str] | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write every product of ``result`` into folder ``output``, named ``<stem>_llr*``.

    Returns
    -------
    dict
        ``map`` (float32 TIFF, NaN outside regions), ``overlay`` (RGBA PNG), ``preview``
        (overlay on the estimate, PNG), ``table`` (CSV) and ``rois`` (ImageJ ROI zip; absent
        when there are no regions).
    """
    from emdenoise.io.metadata import ImageMetadata
    from emdenoise.io.tiff import write_tiff

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    names = {
        "map": f"{stem}_llr.tif",
        "overlay": f"{stem}_llr-overlay.png",
        "preview": f"{stem}_llr-preview.png",
        "table": f"{stem}_llr-regions.csv",
        "rois": f"{stem}_llr-rois.zip",
    }
    targets = {key: output / name for key, name in names.items()}
    existing = [p.name for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]} already exists in {output}; pass --overwrite to replace it.")
    meta = (metadata or ImageMetadata()).copy(axes="YX", shape=result.llr_map.shape, slice_labels=[])
    written = {"map": write_tiff(targets["map"], [result.llr_map], meta, provenance=provenance, overwrite=True, frame_total=1)}
    overlay = overlay_rgba(result.llr_map)
    written["overlay"] = write_png(targets["overlay"], overlay)
    written["preview"] = write_png(targets["preview"], preview_rgb(result.estimate, overlay))
    written["table"] = write_table(targets["table"], result)
    rois = write_rois(targets["rois"], result)
    if rois is not None:
        written["rois"] = rois
    elif targets["rois"].exists():
        targets["rois"].unlink()
    return written
