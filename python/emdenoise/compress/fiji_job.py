"""The ``compress`` and ``decompress`` actions of the Fiji job folder (EM Compress, EM Decompress).

:mod:`emdenoise.fiji.bridge` runs them in its worker when the macro's request says
``action=compress`` or ``action=decompress``; they call the same
:func:`emdenoise.compress.files.compress_file` / :func:`decompress_file` as
``emdenoise compress`` / ``decompress``, so the files are the same.

Request keys, compress: ``input`` (TIFF of the image), ``output`` (the ``.emz`` path),
``model``, ``server``, ``bits``, ``overwrite`` (``1`` to replace). Decompress: ``input``
(the ``.emz``), ``output`` (TIFF in the job folder), ``model`` (optional), ``server``.
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.errors import UserError


def _client(request: dict[str, str]):
    from emdenoise.fiji.clients import job_client

    return job_client(request.get("server"))  # the warm worker keeps the embedded engine's models loaded


def _progress(job):
    def report(done: int, total: int) -> None:
        job.write_status("running", done=done, total=total)

    return report


def run_compress_job(job, request: dict[str, str]) -> dict[str, object]:
    """EM Compress: the image's TIFF to an ``.emz`` file; returns the status keys the macro reads."""
    from emdenoise.compress.files import compress_file

    model = (request.get("model") or "").strip()
    if model in ("", "default"):
        raise UserError("choose an autoencoder (e.g. ede-ae-d16) in the Model field; its latent depth sets the size.")
    output = Path((request.get("output") or "").strip())
    if output.suffix.lower() != ".emz":
        raise UserError(f"the output '{output}' must be a file name ending in .emz; correct it in the dialog.")
    try:
        bits = int(float(request.get("bits") or 8))
    except ValueError:
        raise UserError("bits must be 8 or 16; correct it in the dialog.") from None
    job.write_status("running", done=0, total=0)
    with _client(request) as client:
        result = compress_file(client, Path(request["input"]), output, model_id=model, bits=bits,
                               overwrite=request.get("overwrite") in ("1", "true"), on_frame=_progress(job))
    return {
        "output": result.path,
        "model": result.model_id,
        "frames": result.frames,
        "bytes": result.bytes,
        "bytes_per_pixel": f"{result.bytes_per_pixel:.4f}",
        "ratio": f"{result.ratio:.1f}",
    }


def run_decompress_job(job, request: dict[str, str]) -> dict[str, object]:
    """EM Decompress: an ``.emz`` file to a TIFF the macro opens; returns its status keys."""
    from emdenoise.compress.emz import read_header
    from emdenoise.compress.files import check_model, decompress_file

    source = Path((request.get("input") or "").strip())
    header = read_header(source)
    model = (request.get("model") or "").strip()
    model = check_model(header, None if model in ("", "default") else model, source)
    job.write_status("running", done=0, total=header.frame_count)
    with _client(request) as client:
        path = decompress_file(client, source, Path(request["output"]), model_id=model, overwrite=True,
                               on_frame=_progress(job))
    return {"output": path, "model": model, "title": f"{source.stem}_denoised-{model}.tif", "frames": header.frame_count}
