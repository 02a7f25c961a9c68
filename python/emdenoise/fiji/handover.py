"""``bridge start``'s work: give a job folder to ImageJ's warm worker, starting it when needed.

:func:`hand_over` finds the worker of the ImageJ process that ran the command
(:mod:`emdenoise.fiji.session`), checks that it lives, starts one where there is none or it
died (saying so in one sentence), and queues the job folder for it. When no warm worker
can be had (its folder is another user's, the temp folder is read-only...),
:class:`~emdenoise.fiji.session.SessionUnavailable` tells the bridge to start a worker for
this job alone, as before issue 20.

Only the standard library is imported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emdenoise.fiji.jobdir import temp_folder_of
from emdenoise.fiji.procs import ProcessRef
from emdenoise.fiji.session import (
    LOG,
    SessionDir,
    SessionUnavailable,
    idle_timeout,
    session_path,
    sweep_stale_sessions,
)
from emdenoise.fiji.spawn import python_module_argv, safe_cwd, spawn_detached


@dataclass(frozen=True)
class Handoff:
    """Where a job went.

    Parameters
    ----------
    session : SessionDir
        The worker's folder.
    started : bool
        Whether a worker was started for this job (the status then says "starting worker").
    note : str
        One sentence when a dead worker was found and replaced, else ``""``.
    """

    session: SessionDir
    started: bool
    note: str = ""


def imagej_process() -> ProcessRef:
    """The ImageJ process that ran this bridge command: its parent (``exec()`` starts it directly)."""
    return ProcessRef.of(os.getppid())


def start_worker(session: SessionDir, owner: ProcessRef) -> ProcessRef:
    """Spawn the worker of ``session`` (detached, output to its log) for ImageJ process ``owner``."""
    argv = python_module_argv(
        "emdenoise.fiji.bridge", "serve", str(session.path), "--owner", str(owner), "--idle", f"{idle_timeout():g}"
    )
    pid = spawn_detached(argv, log_path=session.file(LOG), cwd=safe_cwd())
    process = ProcessRef.of(pid)
    session.record_spawned(process)
    return process


def _spawn_or_give_up(session: SessionDir, owner: ProcessRef, *, remove: bool) -> None:
    try:
        start_worker(session, owner)
    except OSError as error:
        if remove:
            session.remove()
        raise SessionUnavailable(f"cannot start the worker ({error})") from None


def _dead_note(session: SessionDir, process: ProcessRef | None, why: str) -> str:
    name = f"the emdenoise worker (pid {process.pid})" if process else "the emdenoise worker"
    last = session.last_log_line()
    log = f"; its log ended: {last}" if last else ""
    return f"{name} had stopped ({why}{log}); a new one was started."


def hand_over(jobdir: Path, owner: ProcessRef | None = None, *, before_queue: Callable[[bool], None] | None = None, attempts: int = 3) -> Handoff:
    """Queue ``jobdir`` for the warm worker of ImageJ process ``owner``, starting the worker if needed.

    Parameters
    ----------
    jobdir : Path
        The job folder (its request is written), in ImageJ's temp folder.
    owner : ProcessRef, optional
        The ImageJ process (default: :func:`imagej_process`).
    before_queue : callable, optional
        Called with ``started`` (whether a worker was started for this job) just before the
        job is queued: the job's first status goes there, since the worker may take the job
        at once.
    attempts : int
        How often to retry when the worker stops while the job is handed over.

    Returns
    -------
    Handoff

    Raises
    ------
    SessionUnavailable
        When no warm worker can be used; the caller starts a worker for this job alone.
    """
    owner = owner or imagej_process()
    temp = temp_folder_of(jobdir)
    sweep_stale_sessions(temp)
    session = SessionDir(session_path(temp, owner))
    note = ""
    for _ in range(attempts):
        started = session.create()
        if started:
            _spawn_or_give_up(session, owner, remove=True)
        else:
            state = session.state()
            if not state.alive and session.claim_restart(state):
                # The folder stays: jobs queued for the dead worker, and job folders macros are
                # preparing in it, go to its successor.
                note = note or _dead_note(session, state.process, state.why)
                if state.process is not None:
                    state.process.kill()  # hung: it must not take jobs beside its successor
                _spawn_or_give_up(session, owner, remove=False)
                started = True
            # else: alive, or another command is restarting it just now: the job waits in the queue
        if before_queue is not None:
            before_queue(started)
        try:
            session.enqueue(jobdir)
        except OSError:  # the worker stopped (idle, or its ImageJ quit) just now: start afresh
            continue
        return Handoff(session, started, note)
    raise SessionUnavailable(f"the worker in {session.path} stopped {attempts} times while a job was handed over")
