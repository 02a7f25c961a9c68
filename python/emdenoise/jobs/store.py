"""Training jobs on disk: one folder per job, so jobs outlive clients and server restarts.

Layout of ``<jobs dir>/<job id>/``::

    job.json       what was asked: model id, settings, series facts, models folder
    series.npy     the series in counts (float32, T x Y x X)
    state.json     state (queued | running | done | failed | cancelled), message, pid,
                   model_id, timestamps; rewritten atomically
    events.jsonl   one JSON progress event per line, appended by the worker
    cancel         present: the worker stops at its next step
    worker.log     the worker's stdout/stderr

The jobs dir is ``$EMDENOISE_JOBS``, else ``.jobs`` inside the user model directory
(ARCHITECTURE.md, "Where models live"); the model repository ignores it (no card.json).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterator

from emdenoise.errors import ModelNotFound

TERMINAL = ("done", "failed", "cancelled")
STATES = ("queued", "running", *TERMINAL)


def jobs_dir() -> Path:
    """Where training jobs are kept (``$EMDENOISE_JOBS``, else ``<user models>/.jobs``)."""
    configured = os.environ.get("EMDENOISE_JOBS")
    if configured:
        return Path(configured)
    from emdenoise.engine.repository import user_models_dir

    return user_models_dir() / ".jobs"


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, OverflowError):
        return False
    try:  # a finished child that nobody reaped yet still answers kill(0)
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def process_start(pid: int | None) -> str:
    """Start time of process ``pid`` (clock ticks since boot, from /proc), '' when unknown:
    with the pid it names one process even after the pid is reused."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, TypeError, ValueError):
        return ""


def owner_alive(state: dict[str, Any]) -> bool:
    """Whether the process that started a job (its server) still runs."""
    owner = state.get("owner_pid")
    if not pid_alive(owner):
        return False
    recorded = state.get("owner_start")
    return not recorded or process_start(owner) in ("", recorded)


class Job:
    """One job folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.id = self.folder.name

    def file(self, name: str) -> Path:
        return self.folder / name

    @property
    def request(self) -> dict[str, Any]:
        return json.loads(self.file("job.json").read_text(encoding="utf-8"))

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.file("state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"state": "failed", "message": f"job {self.id} has no readable state; start it again."}

    def set_state(self, state: str, **values: Any) -> dict[str, Any]:
        current = self.state() if self.file("state.json").exists() else {}
        current.update(values, state=state, updated=time.time())
        write_json(self.file("state.json"), current)
        return current

    def append_event(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True)
        with open(self.file("events.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def events(self, start: int = 0) -> list[dict[str, Any]]:
        """Events from line ``start`` on (a partly written last line is left for later)."""
        try:
            text = self.file("events.jsonl").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # the last element is "" or an unfinished line
        return [json.loads(line) for line in lines[start:] if line]

    def request_cancel(self) -> None:
        self.file("cancel").write_text("cancel\n", encoding="utf-8")

    @property
    def cancel_requested(self) -> bool:
        return self.file("cancel").exists()


class JobStore:
    """The jobs folder: create, find, list, and recover jobs orphaned by a restart."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else jobs_dir()

    def create(self, request: dict[str, Any]) -> Job:
        self.root.mkdir(parents=True, exist_ok=True)
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        job = Job(self.root / job_id)
        job.folder.mkdir()
        write_json(job.file("job.json"), {**request, "job_id": job_id})
        job.set_state("queued", created=time.time(), model_id=request.get("model_id", ""), message="waiting for a worker")
        return job

    def get(self, job_id: str) -> Job:
        if not job_id or "/" in job_id or job_id.startswith(".") or not (self.root / job_id / "job.json").is_file():
            raise ModelNotFound(f"no training job {job_id!r}; list the jobs with 'emdenoise train-series --list'.")
        return Job(self.root / job_id)

    def jobs(self) -> list[Job]:
        if not self.root.is_dir():
            return []
        return [Job(p) for p in sorted(self.root.iterdir()) if (p / "job.json").is_file()]

    def recover(self, owner_pid: int) -> list[str]:
        """Mark failed every unfinished job whose server (owner process) is gone.

        Called when a server (or embedded client) starts: a job left ``queued`` or
        ``running`` by a previous process is reported failed, never silently lost.
        Returns the ids marked.
        """
        marked = []
        for job in self.jobs():
            state = job.state()
            if state.get("state") in TERMINAL:
                continue
            owner = state.get("owner_pid")
            if owner and owner != owner_pid and owner_alive(state):
                continue  # another live server (or client) follows this job
            if owner == owner_pid and pid_alive(state.get("pid")):
                continue
            if pid_alive(state.get("pid")):
                try:  # its server is gone: the orphan would finish unobserved
                    job.request_cancel()
                except OSError:
                    pass
            job.set_state("failed", message="the server stopped while this job was "
                          f"{state.get('state', 'queued')} (restart or crash); start the training again.")
            marked.append(job.id)
        return marked


def follow(job: Job, *, poll: float = 0.2, start: int = 0, alive=lambda: True) -> Iterator[dict[str, Any]]:
    """Yield the job's events as they are written, until it reaches a terminal state.

    The last item is always ``{"kind": "state", "state": ..., "message": ...}`` with the
    final state (``alive()`` False stops early, e.g. when the client went away).
    """
    seen = start
    while alive():
        state = job.state()
        events = job.events(seen)
        seen += len(events)
        for event in events:
            yield event
        if state.get("state") in TERMINAL:
            for event in job.events(seen):
                yield event
            yield {"kind": "state", **state}
            return
        time.sleep(poll)
