"""The ``likelihood`` action of the Fiji job folder (EM Likelihood Map, seed 003 sec. 3).

:mod:`emdenoise.fiji.bridge` runs it in its worker when the macro's request says
``action=likelihood``; it does what ``emdenoise likelihood`` does and writes the same
files, plus an RGB overlay for ImageJ's Image > Overlay > Add Image ("zero transparent").

Request keys: ``input`` (TIFF, the raw frame), ``denoised`` (TIFF, optional),
``output`` (folder), ``model``, ``modality``, ``server``, ``gain``, ``offset`` (0 or empty:
the frame holds counts), ``polarity``, ``vacuum``, ``vacuum_level`` (0: find the vacuum),
``min_sigma``, ``max_sigma``, ``threshold``, ``map_units``, ``test`` (TIFF, optional: another
frame of the same area; the estimate is then made from ``input`` and ``test`` is tested, so
no counts are halved).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emdenoise.errors import UserError


def _number(request: dict[str, str], key: str, *, zero_is_none: bool = True) -> float | None:
    text = (request.get(key) or "").strip()
    if text in ("", "auto", "default"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{key.replace('_', ' ')} must be a number, not '{text}'; correct it in the dialog.") from None
    return None if zero_is_none and value == 0 else value


#: The command line's flags in a refusal, and the dialog field that does the same.
DIALOG_FIELDS = {
    "--vacuum-level": "the dialog's Vacuum_level (counts/px)",
    "--gain": "the dialog's Gain",
    "--offset": "the dialog's Offset",
    "--threshold": "the dialog's Threshold",
}


def dialog_wording(message: str) -> str:
    """A refusal worded for EM Likelihood Map: dialog fields where it names CLI flags.

    Examples
    --------
    >>> dialog_wording("include some vacuum or give --vacuum-level in counts/px.")
    "include some vacuum or give the dialog's Vacuum_level (counts/px)."
    """
    for flag, field in DIALOG_FIELDS.items():
        message = message.replace(flag, field)
    return message.replace("(counts/px) in counts/px", "(counts/px)")


def run_likelihood_job(job, request: dict[str, str]) -> dict[str, object]:
    """Run one EM Likelihood Map request; returns the status keys the macro reads.

    Returns
    -------
    dict
        ``map``, ``overlay`` (RGB PNG, black outside the regions), ``rois`` (zip, empty when
        no column was found), ``table`` (CSV), ``message``, ``model`` (empty when the
        estimate was given), ``regions`` and ``supported`` (counts).
    """
    from emdenoise.commands.likelihood import read_frame
    from emdenoise.fiji.clients import job_client
    from emdenoise.likelihood.export import write_outputs, write_png
    from emdenoise.likelihood.overlay import overlay_rgba

    noisy, metadata, _ = read_frame(Path(request["input"]), 0)
    denoised = None
    if request.get("denoised"):
        denoised, _, _ = read_frame(Path(request["denoised"]), 0)
    model = (request.get("model") or "").strip()
    model = None if model in ("", "default") or denoised is not None else model
    extra = {}
    if request.get("test"):
        if denoised is not None:
            raise UserError("the next frame is tested against a model run on this frame; choose Estimate=[run model], "
                            "or Test_counts=[halves of this frame].")
        tested, _, _ = read_frame(Path(request["test"]), 0)
        if tested.shape != noisy.shape:
            raise UserError(f"the test frame is {tested.shape[1]}x{tested.shape[0]} px and this frame "
                            f"{noisy.shape[1]}x{noisy.shape[0]}; frames of one stack must match.")
        extra["estimate_frame"], noisy = noisy, tested
    settings = {
        "polarity": request.get("polarity") or None,
        "vacuum": request.get("vacuum") or None,
        "vacuum_level": _number(request, "vacuum_level"),
        "min_sigma": _number(request, "min_sigma"),
        "max_sigma": _number(request, "max_sigma"),
        "threshold": _number(request, "threshold"),
        "map_units": request.get("map_units") or None,
    }
    gain, offset = _number(request, "gain"), _number(request, "offset")
    job.write_status("running", done=0, total=1)
    try:
        with job_client(request.get("server")) as client:  # kept open by the warm worker
            result = client.likelihood(
                noisy, denoised, model, modality=request.get("modality") or "any", gain=gain, offset=offset,
                **settings, **extra
            )
    except UserError as error:
        raise UserError(dialog_wording(str(error))) from None
    provenance = {
        "likelihood": "seed 003 sec. 3: Poisson log-likelihood ratio, column vs vacuum, per region",
        "estimate": result.info.get("model_id") or "given image",
        "graph_sha256": result.info.get("graph_sha256") or "none",
        "version": result.info.get("emdenoise_version", ""),
        "vacuum_level": f"{result.vacuum_level:.6g} counts/px",
        "polarity": result.polarity,
        "map_units": result.map_units,
        "tested": "the next frame of the stack (estimate from this frame)" if extra else "this frame",
    }
    output = Path(request["output"])
    written = write_outputs(result, output, "frame", metadata=metadata, provenance=provenance, overwrite=True)
    rgb = overlay_rgba(result.llr_map)
    rgb[rgb[..., 3] == 0, :3] = 0  # ImageJ's "zero transparent" hides black
    overlay = write_png(output / "frame_llr-overlay-rgb.png", np.ascontiguousarray(rgb[..., :3]))
    job.write_status("running", done=1, total=1)
    return {
        "map": written["map"],
        "overlay": overlay,
        "rois": written.get("rois", ""),
        "table": written["table"],
        "message": result.message,
        "model": result.info.get("model_id", ""),
        "regions": len(result.regions),
        "supported": sum(r.supported for r in result.regions),
    }
