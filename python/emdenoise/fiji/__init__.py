"""emdenoise in Fiji and ImageJ.

Two ways in (ARCHITECTURE.md, "Fiji side"):

* ``emdenoise fiji install --fiji PATH`` puts the EM macro commands into a Fiji.app;
  they reach Python through :mod:`emdenoise.fiji.bridge` (a worker process);
* ``emdenoise fiji launch`` or :func:`start_imagej` starts ImageJ/Fiji inside this Python
  (scyjava, or pyimagej for a Fiji.app) and serves the same commands in-process.

The script API (importing this package starts no Java; :func:`start_imagej` does):

>>> from emdenoise.fiji import start_imagej, to_numpy           # doctest: +SKIP
>>> ij = start_imagej(headless=True)                            # doctest: +SKIP
>>> result = ij.denoise(ij.open_image("movie.tif"), "ede-kernel-tem-5")  # doctest: +SKIP
>>> pixels, metadata = to_numpy(result.image)                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "start_imagej": "emdenoise.fiji.launch",
    "find_imagej": "emdenoise.fiji.launch",
    "ImageJSession": "emdenoise.fiji.launch",
    "exit_process": "emdenoise.fiji.launch",
    "denoise_imageplus": "emdenoise.fiji.denoise",
    "Denoised": "emdenoise.fiji.denoise",
    "to_numpy": "emdenoise.fiji.imageplus",
    "to_imageplus": "emdenoise.fiji.imageplus",
    "metadata_of": "emdenoise.fiji.imageplus",
    "iter_frames": "emdenoise.fiji.imageplus",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy: the Fiji bridge imports this package and must start fast, without numpy or Java.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'emdenoise.fiji' has no attribute {name!r}")
