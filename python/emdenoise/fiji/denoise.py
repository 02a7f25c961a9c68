"""Denoise an ImagePlus in this process, through the embedded engine or a server.

What ``EM Denoise`` does in a Python-launched ImageJ, and what scripts call directly:
the frames leave the ImagePlus as numpy arrays, stream through the same client as the
CLI (:func:`emdenoise.client.connect`), and come back as a new 32-bit ImagePlus with the
input's calibration, slice labels and dimensions and the CLI's provenance lines in its
Info. No file is written and no other process is started.

The steps follow :func:`emdenoise.workflow.denoise_file` (default model, counts
calibration of the first frame, provenance), so the pixels equal those of
``emdenoise denoise`` on the TIFF the image came from.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from emdenoise.errors import UserError
from emdenoise.fiji import imageplus
from emdenoise.fiji.clients import default_pool
from emdenoise.workflow import prepare_job, provenance


class Cancelled(UserError):
    """The user pressed Esc (or a script's ``should_cancel`` said so) mid-job."""


@dataclass
class Denoised:
    """What :func:`denoise_imageplus` made.

    Attributes
    ----------
    image : ij.ImagePlus
        The result, not shown yet; titled ``<name>_denoised-<model>.tif``.
    model : str
        Model id used.
    info : dict
        The job's info (model version, graph sha256, emdenoise version, device).
    seconds : float
        Wall time of the job.
    residual : ij.ImagePlus or None
        ``raw - denoised`` when asked for.
    notes : list of str
        Things the user should know; warnings went to ``warn``.
    """

    image: object
    model: str
    info: dict
    seconds: float
    residual: object = None
    notes: list[str] = field(default_factory=list)


def _attach_thread() -> None:
    """Attach the calling Python thread to the JVM as a daemon.

    gRPC pulls request frames on its own threads; JPype would attach them as ordinary
    threads, and an ordinary attached thread keeps the JVM (and Python) from exiting.
    """
    from jpype import JClass

    thread = JClass("java.lang.Thread")
    if not thread.isAttached():
        thread.attachAsDaemon()


def _frames_for_client(imp):
    for frame in imageplus.iter_frames(imp):
        _attach_thread()
        yield frame


def denoise_imageplus(
    imp,
    model: str | None = None,
    *,
    client=None,
    server: str | None = None,
    modality: str = "any",
    gain: float | None = None,
    offset: float | None = None,
    tile: int | None = None,
    residual: bool = False,
    title: str | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Denoised:
    """Denoise every frame of an ImagePlus and return the result as a new ImagePlus.

    Parameters
    ----------
    imp : ij.ImagePlus
        8-, 16- or 32-bit image, stack or hyperstack (RGB is refused).
    model : str, optional
        Model id; default: the card flagged default for ``modality``.
    client : optional
        An open client (:func:`emdenoise.client.connect`); default: one from the shared
        pool for ``server``.
    server : str, optional
        ``host:port`` of ``emdenoise serve``; None or ``"embedded"`` runs the engine here.
    modality : str
        Picks the default model when ``model`` is None.
    gain, offset : float, optional
        Detector counts per electron and zero level, for counts models; estimated from
        the first frame when absent (ARCHITECTURE.md, "Counts").
    tile : int, optional
        Tile size of the embedded engine (a server picks its own).
    residual : bool
        Also return ``raw - denoised`` (float32), which shows structure a model removed
        or invented.
    title : str, optional
        Title of the result; default ``<name>_denoised-<model>.tif`` as the CLI names files.
    on_frame : callable, optional
        ``on_frame(done, total)`` after each result frame.
    should_cancel : callable, optional
        Polled after each frame; when it returns True the job is cancelled and
        :class:`Cancelled` raised.
    warn : callable, optional
        Receives warnings (a dose outside the model's range); default: stderr.

    Returns
    -------
    Denoised
        The new ImagePlus (not shown), the model id and the job's info.

    Raises
    ------
    UserError
        Bad input, unknown model, unreachable server; the message says what to do.
    """
    imageplus.check_greyscale(imp)
    started = time.monotonic()
    notes: list[str] = []
    if client is None:
        client = default_pool.get(server)
    metadata = imageplus.metadata_of(imp)
    total = int(imp.getStackSize())
    frames = _frames_for_client(imp)
    first = next(frames)
    model, counts, calibration = prepare_job(
        client, first, metadata, model_id=model, modality=modality, gain=gain, offset=offset, warn=warn
    )
    job = client.denoise(itertools.chain([first], frames), model, frame_count=total, tile_size=tile or None, **calibration)
    info = job.start()
    results = []
    for done, frame in enumerate(job, 1):
        results.append(imageplus.processor_of(np.asarray(frame, dtype=np.float32)))
        if on_frame is not None:
            on_frame(done, total)
        if should_cancel is not None and done < total and should_cancel():
            job.cancel()
            raise Cancelled("cancelled; no result was made.")
    if len(results) != total:
        raise UserError(f"the job returned {len(results)} of {total} frames; run it again.")
    name = imageplus.base_name(str(imp.getTitle()))
    lines = provenance(info, source=Path(str(imp.getTitle())), counts=counts)
    image = imageplus.to_imageplus(results, metadata, title=title or f"{name}_denoised-{model}.tif", provenance=lines, like=imp)
    difference = None
    if residual:
        difference = residual_image(imp, image, title=f"{name}_residual-{model}.tif", model=model)
    return Denoised(image, model, info, time.monotonic() - started, difference, notes)


def residual_image(raw, denoised, *, title: str, model: str):
    """``raw - denoised`` frame by frame as a 32-bit ImagePlus with the result's metadata.

    The Info holds the denoised image's lines plus ``emdenoise.residual``, as the Fiji
    bridge writes it.
    """
    metadata = imageplus.metadata_of(denoised)
    frames = (
        np.asarray(a, np.float32) - np.asarray(b, np.float32)
        for a, b in zip(imageplus.iter_frames(raw), imageplus.iter_frames(denoised))
    )
    return imageplus.to_imageplus(
        frames, metadata, title=title, provenance={"residual": f"raw - denoised by {model}"}, like=denoised
    )


def convert_to_input_type(image, bits: int) -> None:
    """Convert a 32-bit result back to 8 or 16 bits without scaling (values clipped, rounded).

    What EM Denoise's "same as input" output does (``setOption("ScaleConversions",
    false); run("16-bit")`` in the macro version).
    """
    from jpype import JClass

    converter = JClass("ij.process.ImageConverter")
    scaling = bool(converter.getDoScaling())
    converter.setDoScaling(False)
    try:
        if int(image.getStackSize()) > 1:
            stack_converter = JClass("ij.process.StackConverter")(image)
            (stack_converter.convertToGray8 if bits == 8 else stack_converter.convertToGray16)()
        else:
            single = converter(image)
            (single.convertToGray8 if bits == 8 else single.convertToGray16)()
    finally:
        converter.setDoScaling(scaling)
