"""The ``adapt`` action of the Fiji job folder (EM Train On Data, issue 18).

:mod:`emdenoise.fiji.bridge` runs it in its worker when the macro's request says
``action=adapt``. Like ``emdenoise adapt`` it starts a self-supervised training job on the
image's frames through the client (embedded: a worker process of this one; else the
server), then mirrors the job's progress into the status file the macro polls: ``done`` /
``total`` are seconds of the time limit, ``evaluation`` the latest held-out comparison with
``classical-auto``. When the macro stops polling (Esc), the job is cancelled (the cancel
hooks of :mod:`emdenoise.fiji.train_job`).

Request keys: ``input`` (TIFF: one frame, a pair or a series of one field), ``name`` (model
id), ``method`` (auto, pair, thinning, blindspot, sure, noise2atom), ``minutes``, ``steps``
(optional, 0: the time limit alone), ``from`` (a model made by adapt to continue; empty:
from scratch), ``modality``, ``server``, ``gain``, ``offset`` (gain 0: estimate both),
``series`` (the window title, recorded on the card).
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.errors import UserError
from emdenoise.fiji.train_job import detector_calibration, follow_job, request_number

METHODS = ("auto", "pair", "thinning", "blindspot", "sure", "noise2atom")


def adapt_settings(request: dict[str, str]) -> dict[str, object]:
    """The training settings of an EM Train On Data request, as ``emdenoise adapt`` builds them.

    Raises
    ------
    UserError
        When the method is unknown, the time limit is not positive, or ``from`` is given
        with noise2atom.
    """
    method = (request.get("method") or "auto").strip()
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    minutes = request_number(request, "minutes")
    if minutes <= 0:
        raise UserError(f"Minutes must be more than 0 (it is {minutes:g}); set the training time in the dialog.")
    settings: dict[str, object] = {"max_seconds": 60.0 * minutes}
    if request_number(request, "steps") > 0:
        settings["steps"] = int(request_number(request, "steps"))
    start_from = (request.get("from") or "").strip()
    if method == "noise2atom":
        if start_from:
            raise UserError("From model works with the adapt methods; noise2atom always starts from scratch, "
                            "so leave From model empty.")
        return settings
    settings.update(method=method, modality=(request.get("modality") or "any").strip())
    if start_from:
        settings["from_model"] = start_from
    return settings


def run_adapt_job(job, request: dict[str, str]) -> dict[str, object]:
    """Run one EM Train On Data request; returns the status keys the macro reads.

    Parameters
    ----------
    job : emdenoise.fiji.jobdir.JobDir
        The macro's job folder.
    request : dict
        The macro's request (keys in the module docstring).

    Returns
    -------
    dict
        ``model``, ``job`` and ``message`` (the job's final message: the held-out errors of
        the model and of classical-auto, and which is better).
    """
    from emdenoise.client import connect
    from emdenoise.commands.train_series import format_event
    from emdenoise.fiji.clients import server_of
    from emdenoise.train.series_checks import read_series_file

    name = (request.get("name") or "").strip()
    if not name:
        raise UserError("give the new model a name, e.g. adapt-my-sample.")
    settings = adapt_settings(request)
    gain, offset = detector_calibration(request)
    source = Path(request["input"])
    frames = read_series_file(source)
    series = request.get("series") or source.name
    job.write_status("running", done=0, total=0, unit="second", message="starting the training")
    latest = {"evaluation": ""}

    def progress(event: dict) -> dict[str, object]:
        if event.get("held_out_mse") is not None:
            classical = event.get("classical_mse")
            latest["evaluation"] = (f"step {event['step']}: held-out error {event['held_out_mse']:.4g}"
                                    + (f", classical-auto {classical:.4g}" if classical else ""))
        elapsed = float(event.get("elapsed") or 0.0)
        return {"done": int(elapsed), "total": int(round(elapsed + float(event.get("eta") or 0.0))),
                "unit": "second", "message": format_event(event) or "", **latest}

    with connect(server_of(request.get("server"))) as client:
        training = client.training
        if "method" in settings:
            started = training.start(frames, name, gain=gain, offset=offset, settings=settings,
                                     series_name=series, recipe="adapt")
        else:  # noise2atom, as EM Train On Series runs it
            started = training.start(frames, name, gain=gain, offset=offset, preset="cpu", settings=settings,
                                     series_name=series)
        job_id = started["job_id"]
        final = follow_job(job, training, job_id, progress)
    return {"model": name, "job": job_id, "message": final.get("message", "")}
