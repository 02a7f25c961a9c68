"""The engine over Dask arrays and HyperSpy lazy signals (ARCHITECTURE.md, layout: ``dask.py``).

``emdenoise.dask.denoise(array, model)`` returns a lazy Dask array equal to what the
embedded engine returns for the same frames, whatever the chunking: chunks borrow the
model's receptive-field margin from their neighbours (``map_overlap``), take the frame's
reflection at its edges as the engine does, and are normalised with statistics of their
whole frame. Each Dask worker process loads a model's ONNX Runtime session once.

This module is named after the library it serves; inside emdenoise, ``import dask`` still
means the real Dask (absolute imports), and emdenoise is never run from inside its own
folder.

Examples
--------
>>> import dask.array as da
>>> from emdenoise import dask as emd
>>> movie = da.zeros((100, 2048, 2048), dtype="uint16", chunks=(4, 1024, 1024))
>>> clean = emd.denoise(movie, "ede-kernel-stem-5")  # doctest: +SKIP
>>> clean.to_zarr("clean.zarr")  # doctest: +SKIP
"""

from __future__ import annotations

from emdenoise.cluster.lazy import ChunkingWarning, plan
from emdenoise.engine.engine import DEFAULT_BATCH

__all__ = ["ChunkingWarning", "denoise", "denoise_signal"]


def denoise(array, model: str | None = None, *, gain: float | None = None, offset: float | None = None,
            server: str | None = None, device: str = "auto", models_dirs=None, threads: int | None = None,
            tile_size: int | None = None, batch_size: int = DEFAULT_BATCH, modality: str = "any"):
    """Denoise a Dask (or NumPy) array of frames lazily, chunk by chunk.

    Parameters
    ----------
    array : dask.array.Array or ndarray
        uint8/uint16/int16/int32/float32/float64 pixels, frames on the last two axes
        (any leading axes: time, tilt, scan position).
    model : str, optional
        Model id (``emdenoise models``); default: the card flagged default for ``modality``.
    gain, offset : float, optional
        Detector counts per electron and zero-electron reading, for models that work in
        counts; estimated once from the first frame (mean-variance relation) when not given.
    server : str, optional
        ``host:port`` of an ``emdenoise serve``: each task sends its frames there through
        the client instead of running the model (chunks are rechunked to whole frames,
        which the server normalises and tiles itself).
    device : {"auto", "cpu", "cuda"}
        Where each worker runs the graphs: ``auto`` uses a worker's GPU when ONNX Runtime
        can really run on it (one worker per GPU, pinned with ``CUDA_VISIBLE_DEVICES``),
        else its CPU.
    models_dirs : list of path-like, optional
        Model folders (default: bundled and user models). Workers read the same paths.
    threads : int, optional
        ONNX Runtime threads per chunk task; default 1 on a Dask worker (the worker runs
        ``nthreads`` tasks at once), every core elsewhere.
    tile_size : int, optional
        Largest tile core inside a chunk (default: the card's).
    batch_size : int
        Tiles per ONNX Runtime call.
    modality : str
        Picks the default model when ``model`` is None.

    Returns
    -------
    dask.array.Array
        float32, the shape of ``array``; chunked like ``array`` unless the chunks had to
        change (a :class:`ChunkingWarning` says so): chunks smaller than the model's
        overlap (receptive-field radius + ``tile.multiple_of`` - 1) are merged, and models
        whose card says ``global`` get whole frames.

    Raises
    ------
    emdenoise.errors.UserError
        Unknown model, a pixel type the engine refuses, a non-denoise model, or whole
        frames larger than the memory budget for a 'global' model.

    Notes
    -----
    Normalisations that need per-frame statistics (``min-mean``, ``range01``) reduce each
    whole frame once when ``denoise`` is called (one pass over the input); counts
    calibration reads the first frame. The denoising itself stays lazy.
    """
    return plan(array, model, gain=gain, offset=offset, server=server, device=device, models_dirs=models_dirs,
                threads=threads, tile_size=tile_size, batch_size=batch_size, modality=modality).array


def denoise_signal(signal, model: str | None = None, **options):
    """Denoise a HyperSpy ``Signal2D`` (lazy or not); return a lazy signal with axes and metadata kept.

    Parameters
    ----------
    signal : hyperspy.signals.Signal2D
        E.g. ``hs.load("movie.dm4", lazy=True)``; navigation axes lead, the signal (frame)
        axes are last, as :func:`denoise` expects.
    model : str, optional
        See :func:`denoise`.
    **options
        Passed to :func:`denoise` (``gain``, ``offset``, ``server``, ``device``...).

    Returns
    -------
    hyperspy.signals.LazySignal2D
        float32 data; every axis (name, scale, offset, units) and the metadata copied;
        ``metadata.Signal.quantity`` unchanged; ``metadata.emdenoise`` holds the model id,
        graph sha256, emdenoise version and gain/offset used; the title says "denoised".
    """
    from emdenoise.cluster.signals import denoise_signal as run

    return run(signal, model, **options)
