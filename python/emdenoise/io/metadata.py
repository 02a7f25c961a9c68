"""What emdenoise keeps about an image besides its pixels.

Every reader (TIFF, EM formats) returns an :class:`ImageMetadata`; every writer takes one
back, so calibration, slice labels and acquisition facts survive the round trip through
the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class ImageMetadata:
    """Calibration and acquisition facts of an image or stack.

    Parameters
    ----------
    pixel_size : float or None
        Physical size of one pixel along x (and y) in ``unit``.
    pixel_size_y : float or None
        Size along y when it differs from x; None means square pixels.
    unit : str
        Unit of ``pixel_size`` as ImageJ writes it (``"nm"``, ``"um"``, ``"A"``, ``"pixel"``).
    frame_interval : float or None
        Seconds between consecutive frames of a series.
    slice_labels : list of str
        One label per frame (may be empty).
    axes : str
        Axes of the pixel array as read, e.g. ``"YX"``, ``"TYX"``, ``"TZCYX"``.
    shape : tuple of int
        Shape of the pixel array as read (before flattening to frames).
    info : str
        Free text carried in ImageJ's Info property (provenance is appended here).
    exposure : float or None
        Exposure (dwell) time per frame in seconds, when the file records it.
    gain : float or None
        Detector counts per electron, when known.
    offset : float or None
        Detector reading for zero electrons, when known.
    dose : float or None
        Electrons per pixel, when known.
    source_format : str
        Reader that produced this metadata (``"tiff"``, ``"dm4"``, ``"mrc"``...).
    extra : dict
        Anything else a reader found (original metadata tree, flattened).
    """

    pixel_size: float | None = None
    pixel_size_y: float | None = None
    unit: str = "pixel"
    frame_interval: float | None = None
    slice_labels: list[str] = field(default_factory=list)
    axes: str = "YX"
    shape: tuple[int, ...] = ()
    info: str = ""
    exposure: float | None = None
    gain: float | None = None
    offset: float | None = None
    dose: float | None = None
    source_format: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def copy(self, **changes: Any) -> "ImageMetadata":
        """Return a copy with ``changes`` applied (lists and dicts are copied too)."""
        base = replace(self, slice_labels=list(self.slice_labels), extra=dict(self.extra))
        return replace(base, **changes)
