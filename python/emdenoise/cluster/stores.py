"""Stacks larger than memory: read lazily, denoise on Dask, stream chunk by chunk into Zarr.

``emdenoise denoise STACK -o OUT.zarr --dask ...`` writes the float32 result as a Zarr
array (one chunk per frame unless the input is chunked otherwise) whose attributes hold
the provenance (``emdenoise``) and the calibration (``calibration``: pixel size, unit,
axes, frame interval). The array is written under a temporary name beside ``OUT.zarr``
and renamed when complete, as TIFF outputs are.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import shutil
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from emdenoise.cluster.lazy import plan
from emdenoise.errors import UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.read_errors import CorruptFile
from emdenoise.io.outputs import display_name
from emdenoise.workflow import TIFF_SUFFIXES, Outcome, metadata_modality, open_frames


def _tiff_frame(path: str, index: int, count: int) -> np.ndarray:
    """Frame ``index`` of a TIFF (run by a worker); a damaged file fails with one sentence."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(series.pages) == count and series.pages[index] is not None:
                return series.pages[index].asarray()
            data = series.asarray(out="memmap") if series.dataoffset else series.asarray()
            return np.array(data.reshape((-1,) + tuple(data.shape[-2:]))[index])
    except Exception as error:  # tifffile and the OS raise many kinds on damaged files
        raise CorruptFile(f"{path} is damaged (frame {index} of {count} cannot be read: {type(error).__name__}); "
                          "copy it again from the acquisition PC.") from None


def lazy_stack(path: Path) -> tuple[da.Array, ImageMetadata]:
    """The pixels of ``path`` as a Dask array of one chunk per frame (TIFF read lazily), and its metadata.

    EM formats (dm3/dm4, ser, emd, mrc) are read whole first; for those, load a lazy
    HyperSpy signal and use :func:`emdenoise.dask.denoise_signal` instead.
    """
    frames, metadata, count = open_frames(path)  # checks the file; one sentence when it is bad
    if path.suffix.lower() not in TIFF_SUFFIXES:
        stack = np.stack(list(frames))
        return da.from_array(stack, chunks=(1,) + stack.shape[1:]), metadata
    first = next(frames)
    frames.close()
    reader = dask.delayed(_tiff_frame, pure=True)
    parts = [da.from_delayed(reader(str(path), index, count), first.shape, first.dtype) for index in range(count)]
    stack = da.stack(parts)
    shape = tuple(metadata.shape) if metadata.shape and int(np.prod(metadata.shape[:-2] or (1,))) == count \
        else stack.shape
    return stack.reshape(shape) if shape != stack.shape else stack, metadata


def calibration_attrs(metadata: ImageMetadata) -> dict:
    """The calibration a Zarr output records (ImageJ's names where it has them)."""
    return {"pixel_size": metadata.pixel_size, "pixel_size_y": metadata.pixel_size_y or metadata.pixel_size,
            "unit": metadata.unit, "frame_interval": metadata.frame_interval, "axes": metadata.axes,
            "slice_labels": list(metadata.slice_labels)}


def denoise_to_zarr(client, source: Path, target: Path, *, model_id: str | None, overwrite: bool, device: str,
                    models_dirs=None, server: str | None = None, progress: bool = True, **options) -> Outcome:
    """Denoise the stack ``source`` on ``client``'s workers into the Zarr array ``target``.

    Returns
    -------
    Outcome
        ``written``, ``skipped`` (``target`` exists and not ``overwrite``) or ``failed``
        with one sentence.
    """
    if target.exists() and not overwrite:
        return Outcome(source, "skipped", f"{display_name(target.name)} exists")
    try:
        stack, metadata = lazy_stack(source)
        planned = plan(stack, model_id, device=device, models_dirs=models_dirs, server=server, metadata=metadata,
                       gain=options.get("gain"), offset=options.get("offset"), tile_size=options.get("tile_size"),
                       modality=metadata_modality(metadata, options.get("modality", "any")))
        temporary = target.parent / f".{target.name[:40]}.{secrets.token_hex(6)}.partial"
        try:
            future = client.compute(planned.array.to_zarr(str(temporary), compute=False))
            if progress and sys.stderr.isatty():
                from distributed import progress as show

                with contextlib.redirect_stdout(sys.stderr):  # one progress line, apart from the result
                    show(future)
            future.result()
            import zarr

            attrs = zarr.open_array(str(temporary), mode="r+").attrs
            attrs.update({"emdenoise": dict(planned.provenance, source=display_name(source.name)),
                          "calibration": calibration_attrs(metadata)})
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.rename(temporary, target)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    except UserError as error:
        return Outcome(source, "failed", str(error))
    except OSError as error:
        return Outcome(source, "failed", f"{display_name(target)} could not be written ({error.strerror or error}); "
                                         "free space or choose another -o.")
    return Outcome(source, "written", display_name(target))
