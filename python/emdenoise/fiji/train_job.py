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

#: Callables the bridge runs before it abandons a job whose macro stopped polling.
CANCEL_HOOKS: list = []


def _number(request: dict[str, str], key: str) -> float:
    text = (request.get(key) or "0").strip()
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{key} must be a number, not '{text}'; correct it in the dialog.") from None


def run_train_job(job, request: dict[str, str]) -> dict[str, object]:
    """Run one EM Train On Series request; returns the status keys the macro reads."""
    from emdenoise.client import connect
    from emdenoise.commands.train_series import _read_series, format_event
    from emdenoise.fiji.bridge import server_of

    name = (request.get("name") or "").strip()
    if not name:
        raise UserError("give the new model a name, e.g. n2a-my-sample.")
    settings: dict[str, object] = {}
    if _number(request, "steps") > 0:
        settings["steps"] = int(_number(request, "steps"))
    if _number(request, "minutes") > 0:
        settings["max_seconds"] = 60.0 * _number(request, "minutes")
    gain, offset = _number(request, "gain") or None, _number(request, "offset")
    offset = offset if gain is not None else None
    frames, _ = _read_series(Path(request["input"]))
    job.write_status("running", done=0, total=0, unit="step", message="starting the training")
    with connect(server_of(request.get("server"))) as client:
        training = client.training
        started = training.start(frames, name, gain=gain, offset=offset, preset=request.get("preset") or "cpu",
                                 settings=settings, series_name=request.get("series") or Path(request["input"]).name)
        job_id = started["job_id"]
        CANCEL_HOOKS.append(lambda: training.cancel(job_id))
        final: dict = {}
        for event in training.watch(job_id):
            if event.get("kind") == "state" and event.get("state") in ("done", "failed", "cancelled"):
                final = event
                continue
            if event.get("kind") == "progress":
                job.write_status("running", done=event["step"], total=event["total_steps"], unit="step",
                                 message=format_event(event) or "")
        CANCEL_HOOKS.clear()
    if final.get("state") != "done":
        raise UserError(final.get("message") or f"the training job {job_id} ended as {final.get('state', 'unknown')}.")
    return {"model": name, "job": job_id, "message": final.get("message", "")}
