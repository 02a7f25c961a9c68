"""EM Open: a DM3/DM4, SER/EMI, EMD or MRC file as an ImageJ image, with its calibration.

``run("EM Open", "path=[/data/image.dm4]")`` reads the file with the same readers as
``emdenoise denoise`` (:func:`emdenoise.io.reader.read_image`, RosettaSciIO and mrcfile)
and shows it with the pixel size and unit in the image's calibration, the frame interval
of a series, and the file's metadata in Image > Show Info: the format, the modality it
records (``Modality: stem``, which EM Denoise's default model follows) and the original
metadata tree, one ``key = value`` line each.

Two ways in, as for the other commands: the macro ``fiji-macros/emdenoise/EM_Open.ijm``
asks the bridge's worker for an ImageJ TIFF (:func:`run_open_job`, job action ``open``),
and an ImageJ started from Python serves the command in-process (:func:`em_open`).
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.errors import UserError
from emdenoise.io.metadata import ImageMetadata

#: Most original-metadata lines copied into Info (a DM file has thousands).
MAX_INFO_LINES = 2000


def read_for_imagej(path: str | Path):
    """Pixels and metadata of ``path``, with Info lines describing the file.

    Returns
    -------
    pixels : ndarray
        Frames on the last two axes.
    metadata : ImageMetadata
        As read, ``info`` holding the Source/Format/Modality lines and the original metadata.
    """
    from emdenoise.io.modality import modality_with_reason
    from emdenoise.io.reader import read_image

    path = Path(path)
    if not str(path).strip():
        raise UserError("EM Open needs a file; give path=[/folder/image.dm4] or choose one in the dialog.")
    pixels, meta = read_image(path)
    return pixels, meta.copy(info=info_text(path, meta, modality_with_reason(meta)))


def info_text(path: Path, meta: ImageMetadata, modality: tuple[str, str] | None) -> str:
    """The Info of an opened file: source, format, modality, then the original metadata."""
    lines = [f"Source: {path}", f"Format: {meta.source_format}"]
    if modality is not None:
        lines.append(f"Modality: {modality[0]} (from {modality[1]})")
    if meta.pixel_size:
        lines.append(f"Pixel size: {meta.pixel_size:g} {meta.unit}")
    original = meta.extra.get("original_metadata") or {}
    for index, (key, value) in enumerate(sorted(original.items())):
        if index == MAX_INFO_LINES:
            lines.append(f"... {len(original) - MAX_INFO_LINES} more entries")
            break
        lines.append(f"{key} = {str(value).splitlines()[0] if str(value) else ''}")
    return "\n".join(lines)


def run_open_job(job, request: dict[str, str]) -> dict[str, object]:
    """Bridge action ``open``: ``request['input']`` (an EM file) -> ``request['output']`` (ImageJ TIFF)."""
    from emdenoise.io.tiff import write_tiff

    source, target = Path(request["input"]), Path(request["output"])
    job.write_status("running", done=0, total=1, unit="file")
    pixels, meta = read_for_imagej(source)
    frames = pixels.reshape((-1, *pixels.shape[-2:]))
    write_tiff(target, iter(frames), meta, overwrite=True, frame_total=len(frames))
    return {"output": target, "title": source.name, "note": ""}


def em_open(ctx) -> None:
    """In-process ``run("EM Open", "path=[...]")`` (an ImageJ started by ``emdenoise fiji launch``)."""
    from emdenoise.fiji.imageplus import to_imageplus
    from emdenoise.fiji.options import string

    values = ctx.values([string("Path", "", 40)], "A DM3/DM4, SER/EMI, EMD or MRC file.")
    if values is None:
        return
    path = Path(str(values["path"]))
    pixels, meta = read_for_imagej(path)
    imp = to_imageplus(pixels, meta, title=path.name)
    imp.show()
    ctx.record()
    ctx.status(f"{ctx.command}: {path.name} ({imp.getStackSize()} frames, {meta.source_format})")
