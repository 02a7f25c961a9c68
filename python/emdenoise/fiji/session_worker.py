"""The warm worker of an ImageJ session (``bridge serve SESSIONDIR --owner PID``; issue 20, item 1).

Started by the first EM command of an ImageJ process (:mod:`emdenoise.fiji.handover`), it
runs every job later commands queue in its folder (:mod:`emdenoise.fiji.session`), each in
a thread of its own, with the embedded engine kept open between jobs, so models load once
per session instead of once per command (:func:`emdenoise.fiji.clients.keep_clients`).

Heartbeats both ways:

* it rewrites its folder's beat file every :data:`~emdenoise.fiji.session.BEAT_INTERVAL`
  seconds, and each running job's ``worker-beat.txt``, so a command or a polling macro
  notices within seconds when it was killed;
* it checks ImageJ's process as often and stops when ImageJ is gone, cancelling what runs;
  a job whose macro stops touching its heartbeat (Esc, the macro aborted) is cancelled alone.

A cancelled job stops at its next status write (:class:`JobCancelled` is raised there);
one that does not stop within :data:`CANCEL_GRACE` seconds (one very long frame) takes the
worker down with it, and the next command starts a new worker. With nothing to do for the
idle time it stops (``$EMDENOISE_FIJI_WORKER_IDLE``, default 15 minutes).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from emdenoise.fiji.jobdir import HEARTBEAT_TIMEOUT, JobDir, _own_folder
from emdenoise.fiji.job_run import run_cancel_hooks, run_job
from emdenoise.fiji.procs import ProcessRef
from emdenoise.fiji.session import BEAT_INTERVAL, QUEUE_POLL, SessionDir

#: Seconds a cancelled job may take to reach its next status write before the worker exits.
CANCEL_GRACE = 10.0


class JobCancelled(BaseException):
    """Raised in a job's thread at its next progress write once the job was cancelled.

    A ``BaseException``, like ``KeyboardInterrupt``: a handler's ``except Exception`` does not
    swallow it, its ``finally`` blocks still run.
    """


class SessionJob(JobDir):
    """A job folder run by the warm worker: cancellable, with cancel hooks of its own.

    Parameters
    ----------
    path : path
        The job folder.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.cancelled = threading.Event()
        #: Callables that cancel what outlives the job (a training job): see run_cancel_hooks.
        self.cancel_hooks: list = []

    def write_status(self, state: str, **values: object) -> None:
        """Write the status, or stop the job here once it was cancelled (its folder is gone then)."""
        if self.cancelled.is_set():
            if state in ("starting", "running"):
                raise JobCancelled(str(self.path))
            return
        super().write_status(state, **values)


class RunningJob:
    """One job in its thread, watched by the worker's loop.

    Parameters
    ----------
    path : Path
        The job folder.
    """

    def __init__(self, path: Path):
        self.job = SessionJob(path)
        self.accepted = time.time()
        self.finished = threading.Event()
        self.cancelled_at: float | None = None
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name=f"job {path.name}", daemon=True)

    def start(self) -> None:
        """Beat once for the macro and start the job's thread."""
        try:
            self.job.beat()
        except OSError:
            pass
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = run_job(self.job)
        except JobCancelled:
            self.code = 3
        except BaseException as error:  # never let one job's failure pass unseen
            print(f"job {self.job.path.name} failed: {error!r}", flush=True)
            self.code = 1
        finally:
            self.finished.set()

    def tick(self) -> None:
        """Beat for the macro; cancel the job when the macro stopped polling (Esc, ImageJ closed)."""
        if self.finished.is_set() or self.cancelled_at is not None:
            return
        try:
            self.job.beat()
        except OSError:  # the folder is gone (checked below) or full: the macro then sees the beat stop
            pass
        if not self.job.path.exists():  # the macro cleaned up after Esc
            self.cancel("its folder was removed")
            return
        age = self.job.heartbeat_age()
        if age is None:
            age = time.time() - self.accepted
        if age > HEARTBEAT_TIMEOUT:
            self.cancel(f"no heartbeat for {age:.1f} s")

    def cancel(self, why: str) -> None:
        """Stop the job at its next status write, cancel what outlives it, remove its folder."""
        print(f"{why}: cancelling and removing {self.job.path}", flush=True)
        self.job.cancelled.set()
        self.cancelled_at = time.monotonic()
        run_cancel_hooks(self.job)
        self.job.remove()

    def overdue(self) -> bool:
        """Cancelled more than :data:`CANCEL_GRACE` seconds ago and still running."""
        return (
            self.cancelled_at is not None
            and not self.finished.is_set()
            and time.monotonic() - self.cancelled_at > CANCEL_GRACE
        )


class SessionWorker:
    """The loop of the warm worker (see the module's description).

    Parameters
    ----------
    session : SessionDir
        Its folder.
    owner : ProcessRef
        The ImageJ process it belongs to.
    idle : float
        Seconds without a job after which it stops.
    """

    def __init__(self, session: SessionDir, owner: ProcessRef, idle: float):
        self.session: SessionDir | None = session  # None once another command removed the folder
        self.owner = owner
        self.idle = idle
        self.me = ProcessRef.of(os.getpid())
        self.jobs: list[RunningJob] = []
        self.retired = False
        self._last_busy = time.monotonic()

    def run(self) -> int:
        """Serve jobs until ImageJ is gone or the worker was idle for :attr:`idle` seconds."""
        from emdenoise.fiji.clients import keep_clients

        self.session.beat(self.me)  # first, so a command sees this worker alive at once
        keep_clients()
        print(f"emdenoise worker {self.me.pid} for ImageJ process {self.owner.pid} (idle limit {self.idle:g} s)", flush=True)
        next_tick = 0.0
        while True:
            self._accept()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + BEAT_INTERVAL
                if self._tick(now):
                    return 0
            time.sleep(QUEUE_POLL)

    def _accept(self) -> None:
        if self.session is None:
            return
        for path in self.session.take():
            if not _own_folder(path):
                print(f"ignored {path}: not a folder of this user", flush=True)
                continue
            job = RunningJob(path)
            job.start()
            self.jobs.append(job)

    def _tick(self, now: float) -> bool:
        """Beat, watch jobs and ImageJ; True when the worker is done."""
        if not self.retired:
            try:
                self.session.beat(self.me)
            except FileNotFoundError:  # a command judged this worker dead and removed its folder
                print("the worker folder was removed: finishing the running jobs, then stopping", flush=True)
                self.session = None  # a successor may make a folder of that name: leave it alone
                self.retired = True
        for job in self.jobs:
            job.tick()
        if any(job.overdue() for job in self.jobs):
            self._exit("a cancelled job did not stop", code=3)
        self.jobs = [job for job in self.jobs if not job.finished.is_set()]
        if self.jobs:
            self._last_busy = now
        if not self.owner.alive():
            for job in self.jobs:
                job.cancel("ImageJ quit")
            self._exit(f"ImageJ (process {self.owner.pid}) quit", code=0)
        if self.session is not None and not self.retired and self.session.preparing():
            self._last_busy = now  # a macro is exporting an image into jobs/: not idle
        if not self.retired and not self.jobs and now - self._last_busy > self.idle:
            print(f"idle for {self.idle:g} s: stopping", flush=True)
            self.session = self.session.retire()
            self.retired = True
            self._accept()  # jobs handed over just before the folder was renamed
        if self.retired and not self.jobs:
            self._accept()
            if not self.jobs:
                if self.session is not None:
                    self.session.remove()
                return True
        return False

    def _exit(self, why: str, *, code: int) -> None:
        """Remove the worker folder and end the process at once (job threads may be inside inference)."""
        print(f"{why}: the worker stops", flush=True)
        if self.session is not None:
            self.session.remove()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(session_dir: Path, owner: str, idle: float) -> int:
    """Run the warm worker of ``session_dir`` for ImageJ process ``owner`` (``PID`` or ``PID:START``).

    Parameters
    ----------
    session_dir : Path
        The worker folder the starting command made.
    owner : str
        The ImageJ process, as :class:`~emdenoise.fiji.procs.ProcessRef` writes it.
    idle : float
        Seconds without a job after which the worker stops.

    Returns
    -------
    int
        The exit status.
    """
    process = ProcessRef.parse(owner)
    if process is None:
        print(f"bad owner process {owner!r}", flush=True)
        return 2
    return SessionWorker(SessionDir(session_dir), process, idle).run()
