"""The imaging modality (TEM or STEM) a file's own metadata records.

The default model depends on the modality (ARCHITECTURE.md, "Model ids": the card flagged
``default`` for the image's modality). The microscope software writes it down; this
module reads what RosettaSciIO and the TIFF reader return in
``ImageMetadata.extra["original_metadata"]`` (flattened keys) or the Info text:

* DM3/DM4 (Gatan): ``Microscope Info.Illumination Mode`` (``TEM``, ``STEM NANOPROBE``...),
  else ``Microscope Info.Operation Mode`` (``IMAGING`` / ``SCANNING``); an SEM
  illumination says neither;
* Velox EMD: the type of the detector that made the image (``ScanningDetector`` /
  ``ImagingDetector``), else ``Optics.OperatingMode`` (1 TEM, 2 STEM);
* TIA SER/EMI: ``ObjectInfo.ExperimentalDescription.Mode`` (``STEM nP SA Zoom ...`` /
  ``TEM uP SA Zoom Image``), images only (a diffraction pattern says neither);
* TIFF: a ``Modality: stem`` line in ImageJ's Info (written by EM Open);
* Berkeley EMD and MRC record nothing usable: None.
"""

from __future__ import annotations

import re

from emdenoise.io.metadata import ImageMetadata

#: The Info line EM Open writes and :func:`modality_of` reads back.
INFO_LINE = re.compile(r"^Modality:\s*(tem|stem)\b", re.IGNORECASE | re.MULTILINE)
_DM = "ImageList.TagGroup0.ImageTags.Microscope Info."


def modality_of(meta: ImageMetadata) -> str | None:
    """``"tem"``, ``"stem"`` or None when the file does not say.

    Parameters
    ----------
    meta : ImageMetadata
        What :func:`emdenoise.io.reader.read_image` (or the TIFF reader) returned.

    Returns
    -------
    str or None
    """
    found = modality_with_reason(meta)
    return None if found is None else found[0]


def modality_with_reason(meta: ImageMetadata) -> tuple[str, str] | None:
    """``(modality, the metadata entry that says so)``, or None."""
    om = meta.extra.get("original_metadata") or {}
    fmt = meta.source_format
    if fmt in ("dm3", "dm4"):
        return _from_dm(om)
    if fmt == "emd-velox":
        return _from_velox(om)
    if fmt in ("ser", "emi"):
        return _from_tia(om, meta.unit)
    match = INFO_LINE.search(meta.info or "")
    if match:
        return match.group(1).lower(), "Info: Modality"
    return None


def _from_dm(om: dict) -> tuple[str, str] | None:
    illumination = str(om.get(_DM + "Illumination Mode", "")).strip().upper()
    key = "Microscope Info.Illumination Mode = " + illumination
    if illumination.startswith("STEM"):
        return "stem", key
    if illumination.startswith("TEM"):
        return "tem", key
    if illumination:  # SEM, or a mode emdenoise has no models for
        return None
    operation = str(om.get(_DM + "Operation Mode", "")).strip().upper()
    if operation == "SCANNING":
        return "stem", "Microscope Info.Operation Mode = SCANNING"
    if operation == "IMAGING":
        return "tem", "Microscope Info.Operation Mode = IMAGING"
    return None


def _from_velox(om: dict) -> tuple[str, str] | None:
    detector = str(om.get("BinaryResult.Detector", ""))
    for key, value in om.items():
        if key.startswith("Detectors.") and key.endswith(".DetectorName") and str(value) == detector:
            kind = str(om.get(key[: -len("DetectorName")] + "DetectorType", ""))
            if kind == "ScanningDetector":
                return "stem", f"detector {detector} (ScanningDetector)"
            if kind == "ImagingDetector":
                return "tem", f"detector {detector} (ImagingDetector)"
    mode = str(om.get("Optics.OperatingMode", "")).strip()
    if mode in ("1", "2"):
        return ("tem" if mode == "1" else "stem"), f"Optics.OperatingMode = {mode}"
    return None


def _from_tia(om: dict, unit: str) -> tuple[str, str] | None:
    mode = str(om.get("ObjectInfo.ExperimentalDescription.Mode", "")).strip()
    words = mode.upper().split()
    if not words or unit.startswith("1/"):  # a diffraction pattern: neither model family fits
        return None
    if words[0] == "STEM":
        return "stem", f"Mode = {mode}"
    if words[0] == "TEM" and "IMAGE" in words:
        return "tem", f"Mode = {mode}"
    return None


__all__ = ["INFO_LINE", "modality_of", "modality_with_reason"]
