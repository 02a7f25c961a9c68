"""Whole-frame guides: a classical estimate computed once per frame and fed to a network as a second channel.

A tiled network sees one window at a time, so it cannot use what only the whole frame
holds: in a crystal image, the lattice reflections of the amplitude spectrum, which the
Fourier-space Wiener filter of Kilaas (1998) keeps while it removes the smooth noise
background (:func:`emdenoise.baselines.hrtem.fourier_wiener`, the best tuned classical
row of issue 17's cross-domain HRTEM set). A guided model takes ``[counts, guide]`` and
learns where to trust the guide (periodic regions) and where not (edges, amorphous
support, vacuum). The guide is computed on the whole frame before the frame is cut into
windows, so the outputs do not depend on the cut.

A model card names its guide as ``"guide": {"name": "fourier-wiener", "delta": 8.0}``;
training (:mod:`emdenoise.train.sim_denoiser`) and the engine call the same function.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emdenoise.errors import InvalidInput


def _fourier_wiener(frame: np.ndarray, *, delta: float = 8.0, width: int = 9, iterations: int = 1) -> np.ndarray:
    from emdenoise.baselines.hrtem import fourier_wiener  # scipy: only for guided models

    return fourier_wiener(frame, delta=delta, width=width, iterations=iterations)


#: Guide name -> function ``(frame, **params) -> float32 frame`` in the frame's units.
GUIDES = {"fourier-wiener": _fourier_wiener}


def guide_frame(spec: dict[str, Any], frame: np.ndarray) -> np.ndarray:
    """The guide channel of one frame, as a card's ``guide`` entry specifies it.

    Parameters
    ----------
    spec : dict
        ``{"name": ..., **params}``; ``name`` is a key of :data:`GUIDES`.
    frame : ndarray
        One 2-D frame in the model's units (counts for the VST U-Nets).

    Returns
    -------
    ndarray of float32, same shape as ``frame``

    Raises
    ------
    InvalidInput
        When the guide is unknown (a card from a newer emdenoise).
    """
    params = {k: v for k, v in spec.items() if k != "name"}
    name = spec.get("name")
    if name not in GUIDES:
        raise InvalidInput(f"this model needs the guide {name!r}, which this emdenoise does not have "
                           f"(known: {', '.join(GUIDES)}); update emdenoise to run it.")
    return np.ascontiguousarray(GUIDES[name](np.asarray(frame, dtype=np.float32), **params), dtype=np.float32)
