"""The ``train`` action of the Fiji job folder (EM Train On Series, Noise2Atom, seed 004).

:mod:`emdenoise.fiji.bridge` runs it in its worker when the macro's request says
``action=train``. Like ``emdenoise train-series`` it starts a training job through the
client (embedded: a worker process of this one; else the server), then mirrors the job's
progress into the status file the macro polls (``done``/``total`` are training steps).
When the macro stops polling (Esc), the job is cancelled.

Request keys: ``input`` (TIFF series), ``name`` (model id), ``preset``, ``minutes`` and
``steps`` (0: the preset's), ``server``, ``gain``, ``offset`` (0: estimate), ``series``
(the window title, recorded on the card).
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.errors import UserError

#: Callables the bridge runs before it abandons a job whose macro stopped polling (EM Train On
#: Series and EM Train On Data alike: :mod:`emdenoise.fiji.adapt_job` uses this list too), in a
#: worker of one job; the warm worker's jobs keep theirs in ``job.cancel_hooks``.
CANCEL_HOOKS: list = []


def request_number(request: dict[str, str], key: str) -> float:
    """The number under ``key`` of a macro's request (0 when absent or empty).

    Raises
    ------
    UserError
        When the value is not a number.
    """
    text = (request.get(key) or "0").strip()
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{key} must be a number, not '{text}'; correct it in the dialog.") from None


def detector_calibration(request: dict[str, str]) -> tuple[float | None, float | None]:
    """``(gain, offset)`` of a request; ``(None, None)`` (estimate both) when the gain is 0."""
    gain = request_number(request, "gain") or None
    return gain, (request_number(request, "offset") if gain is not None else None)


def follow_job(job, training, job_id: str, progress) -> dict:
    """Mirror a training job's progress into the status file until it ends; return its final event.

    Parameters
    ----------
    job : emdenoise.fiji.jobdir.JobDir
        The macro's job folder.
    training
        ``client.training`` of the client that started the job.
    job_id : str
    progress : callable
        Maps a progress event to the status keys to write (``done``, ``total``, ``unit``...).

    Raises
    ------
    UserError
        When the job fails or is cancelled (its own message).
    """
    # A job of the warm worker has hooks of its own (other jobs run beside it); a worker of
    # one job uses this module's list.
    hooks = getattr(job, "cancel_hooks", CANCEL_HOOKS)
    hooks.append(lambda: training.cancel(job_id))
    final: dict = {}
    try:
        for event in training.watch(job_id):
            if event.get("kind") == "state" and event.get("state") in ("done", "failed", "cancelled"):
                final = event
            elif event.get("kind") == "progress":
                job.write_status("running", **progress(event))
    finally:
        hooks.clear()
    if final.get("state") != "done":
        raise UserError(final.get("message") or f"the training job {job_id} ended as {final.get('state', 'unknown')}.")
    return final


def run_train_job(job, request: dict[str, str]) -> dict[str, object]:
    """Run one EM Train On Series request; returns the status keys the macro reads."""
    from emdenoise.client import connect
    from emdenoise.commands.train_series import _read_series, format_event
    from emdenoise.fiji.clients import server_of

    name = (request.get("name") or "").strip()
    if not name:
        raise UserError("give the new model a name, e.g. n2a-my-sample.")
    settings: dict[str, object] = {}
    if request_number(request, "steps") > 0:
        settings["steps"] = int(request_number(request, "steps"))
    if request_number(request, "minutes") > 0:
        settings["max_seconds"] = 60.0 * request_number(request, "minutes")
    gain, offset = detector_calibration(request)
    frames, _ = _read_series(Path(request["input"]))
    job.write_status("running", done=0, total=0, unit="step", message="starting the training")
    with connect(server_of(request.get("server"))) as client:
        training = client.training
        started = training.start(frames, name, gain=gain, offset=offset, preset=request.get("preset") or "cpu",
                                 settings=settings, series_name=request.get("series") or Path(request["input"]).name)
        job_id = started["job_id"]
        final = follow_job(job, training, job_id, lambda event: {
            "done": event["step"], "total": event["total_steps"], "unit": "step", "message": format_event(event) or ""})
    return {"model": name, "job": job_id, "message": final.get("message", "")}
