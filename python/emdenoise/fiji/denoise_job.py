"""EM Denoise in the Fiji bridge's worker: one file through the client, as the CLI does it.

:data:`emdenoise.fiji.job_actions.ACTIONS` runs :func:`run_denoise` for ``action=denoise``:
:func:`emdenoise.workflow.denoise_file` (exactly what ``emdenoise denoise`` runs per file),
with the status file rewritten as frames finish and, on request, the residual
``raw - denoised`` written next to the output.
"""

from __future__ import annotations

import time
from pathlib import Path

from emdenoise.fiji.clients import job_client, model_loaded, note_model_run, server_of
from emdenoise.fiji.jobdir import JobDir

STATUS_INTERVAL = 0.2  # seconds between status rewrites while frames stream


class _Progress:
    """Writes finished-frame counts to the status file, at most every ``STATUS_INTERVAL`` s."""

    def __init__(self, job: JobDir):
        self.job = job
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= STATUS_INTERVAL or done == total:
            self._last = now
            self.job.write_status("running", done=done, total=total)


def _optional_float(value: str | None) -> float | None:
    if value is None or value.strip() in ("", "0", "auto", "estimate"):
        return None
    return float(value)


def run_denoise(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """Denoise ``request['input']`` into ``request['output']`` as the CLI would."""
    from emdenoise.engine.repository import choose_default
    from emdenoise.errors import UserError
    from emdenoise.workflow import denoise_file, file_modality

    source = Path(request["input"])
    target = Path(request["output"])
    server = server_of(request.get("server"))
    tile = int(float(request.get("tile") or 0))
    modality = request.get("modality") or "any"
    model = request.get("model") or ""
    try:
        gain = _optional_float(request.get("gain"))
        offset = _optional_float(request.get("offset"))
    except ValueError:
        raise UserError("gain and offset must be numbers (0 = estimate from the image).") from None
    warnings: list[str] = []  # a dose outside the card's range: the macro's status line and Log
    with job_client(server) as client:  # the warm worker's engine keeps its models loaded
        if model in ("", "default"):  # the file's own modality (EM Open's Info line, DM/EMD tags) first
            model = choose_default(client.list_models(), file_modality(source, modality))
        # The status bar says so at once while a model loads (10 s or more for a U-Net).
        loading = server is None and not model_loaded(server, model)
        job.write_status("running", done=0, total=0, phase="loading model" if loading else "")
        denoise_file(
            client,
            source,
            target,
            model_id=model,
            modality=modality,
            gain=gain,
            offset=offset,
            overwrite=True,
            on_frame=_Progress(job),
            tile_size=tile or None,
            warn=warnings.append,
        )
        note_model_run(server, model)
    if request.get("residual"):
        write_residual(source, target, Path(request["residual"]), model=model)
    lines = [" ".join(w.split()) for w in warnings]
    numbered = {f"warning{i}": line for i, line in enumerate(lines, start=1)}
    return {"output": target, "model": model, "note": "; ".join(lines), "warnings": len(lines), **numbered}


def write_residual(source: Path, denoised: Path, target: Path, *, model: str) -> Path:
    """Write ``raw - denoised`` frame by frame (float32), with the input's calibration.

    The residual shows what a model removed; structure in it (lattice fringes, edges) is
    signal the model suppressed or invented, which flat noise is not.
    """
    import numpy as np

    from emdenoise.io.tiff import iter_tiff_frames, read_tiff_metadata, write_tiff

    metadata = read_tiff_metadata(denoised)
    frames = (
        np.asarray(raw, np.float32) - np.asarray(clean, np.float32)
        for raw, clean in zip(iter_tiff_frames(source), iter_tiff_frames(denoised))
    )
    return write_tiff(target, frames, metadata, provenance={"residual": f"raw - denoised by {model}"}, overwrite=True)
