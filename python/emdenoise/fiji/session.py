"""The warm worker's folder: one long-lived worker per ImageJ process (issue 20, item 1).

A fresh Python per EM command paid the interpreter, the imports and the model load every
time. Instead the first command of an ImageJ session starts one worker
(:mod:`emdenoise.fiji.session_worker`) and every later command hands its job folder to it.

The worker belongs to one ImageJ process and one user. Its folder lies in ImageJ's temp
folder beside the job folders and is named after both,
``emdenoise-worker-<uid>-<imagej pid>-<imagej start time>``, so every bridge command of
that ImageJ finds it without being told; it is created with mode 0700, and a folder of
that name that is a link, another user's, or open to others is never used (the command
then falls back to a worker of its own, as before). ImageJ is the bridge command's parent:
``exec()`` starts the launcher directly from the JVM.

Files in the folder:

``worker-beat.txt``
    ``pid`` (with its start time) and ``time``, rewritten by the worker every
    :data:`BEAT_INTERVAL` seconds. A bridge command that finds it older than
    :data:`STALE_AFTER`, or its process gone, reports the dead worker in one sentence
    and starts a new one.
``spawned.txt``
    The pid the starting command spawned, before the worker's first beat.
``queue/``
    One ``<job folder name>.txt`` per job handed over (``jobdir=PATH``), written atomically
    (a hidden temporary name, then renamed); the worker takes and removes them.
``jobs/``
    Job folders a macro made itself while the worker lives: private through this folder,
    they need no Python to create, and their entries in ``queue/`` none to hand over
    (EM Denoise takes this way once a command has named the folder to ImageJ, in the Java
    system property ``emdenoise.worker``; every other path goes through the bridge). The
    worker does not stop for idleness while one is there.
``session.log``
    The worker's output.

A worker about to stop (idle, ImageJ gone) first renames its folder away, so a job handed
over at that moment either lands in the renamed folder, which the worker still empties,
or fails to land and the command starts a new worker.

Only the standard library is imported here: the bridge's start-up stays short.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from emdenoise.fiji.jobdir import read_keyvalues, write_keyvalues, write_new_file
from emdenoise.fiji.procs import ProcessRef

PREFIX = "emdenoise-worker-"
BEAT = "worker-beat.txt"
SPAWNED = "spawned.txt"
QUEUE = "queue"
JOBS = "jobs"
LOG = "session.log"

#: Seconds between the worker's beats.
BEAT_INTERVAL = 0.5
#: Seconds without a beat after which a worker counts as dead (hung or killed).
STALE_AFTER = 5.0
#: Seconds a just-spawned worker may take to write its first beat.
STARTUP_LIMIT = 30.0
#: Seconds between the worker's looks into its queue.
QUEUE_POLL = 0.02
#: Default seconds a worker with nothing to do waits before it stops (env EMDENOISE_FIJI_WORKER_IDLE).
IDLE_TIMEOUT = 900.0


class SessionUnavailable(Exception):
    """The warm worker cannot be used; the sentence says why (the command falls back to a worker of its own)."""


def idle_timeout() -> float:
    """Seconds an idle worker waits before it stops: ``$EMDENOISE_FIJI_WORKER_IDLE``, else :data:`IDLE_TIMEOUT`."""
    try:
        return max(float(os.environ.get("EMDENOISE_FIJI_WORKER_IDLE", IDLE_TIMEOUT)), 0.0)
    except ValueError:
        return IDLE_TIMEOUT


def _user() -> str:
    if hasattr(os, "getuid"):
        return str(os.getuid())
    import getpass

    return "".join(c for c in getpass.getuser() if c.isalnum()) or "user"


def session_path(temp_dir: str | os.PathLike, owner: ProcessRef) -> Path:
    """The worker folder of ImageJ process ``owner`` and this user in ``temp_dir``."""
    return Path(temp_dir) / f"{PREFIX}{_user()}-{owner.pid}-{owner.started or '0'}"


def _private_folder(path: Path) -> bool:
    """Whether ``path`` is a real folder (no link) of this user that nobody else may enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    private = os.name == "nt" or stat.S_IMODE(info.st_mode) & 0o077 == 0
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner and private


@dataclass(frozen=True)
class WorkerState:
    """What a bridge command sees of a worker: its process, whether it lives, and why not.

    Parameters
    ----------
    process : ProcessRef or None
        The worker (or the process spawned to become it); None when none was recorded.
    alive : bool
    why : str
        Why it counts as dead (``""`` when alive).
    source : Path, optional
        The file the judgement rests on.
    """

    process: ProcessRef | None
    alive: bool
    why: str = ""
    #: The file the judgement rests on (the beat file, or the spawned-pid file before it).
    source: Path | None = None


class SessionDir:
    """One warm worker's folder (see the module's description).

    Parameters
    ----------
    path : path
        The folder (:func:`session_path`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- created by the first command ----------------------------------------------------
    def create(self) -> bool:
        """Make the folder (mode 0700) and its queue; False when it exists already.

        Raises
        ------
        SessionUnavailable
            When it exists but is not this user's private folder, or cannot be made.
        """
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            if not _private_folder(self.path):
                raise SessionUnavailable(f"{self.path} is not a private folder of this user") from None
            return False
        except OSError as error:
            raise SessionUnavailable(f"cannot create {self.path} ({error.strerror})") from None
        os.mkdir(self.file(QUEUE), 0o700)
        os.mkdir(self.file(JOBS), 0o700)
        return True

    def record_spawned(self, process: ProcessRef) -> None:
        """Note the process just started to become this folder's worker."""
        write_keyvalues(self.file(SPAWNED), {"pid": process})

    # -- the worker's side ------------------------------------------------------------------
    def beat(self, worker: ProcessRef) -> None:
        """The worker's sign of life (raises FileNotFoundError once the folder is gone)."""
        write_keyvalues(self.file(BEAT), {"pid": worker, "time": f"{time.time():.3f}"})

    def take(self) -> list[Path]:
        """The job folders handed over since the last call, oldest first; their entries are removed."""
        try:
            entries = sorted(os.scandir(self.file(QUEUE)), key=lambda e: e.stat().st_mtime)
        except FileNotFoundError:
            return []
        jobs = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".txt"):
                continue  # an entry still being written
            try:
                jobdir = read_keyvalues(Path(entry.path)).get("jobdir", "")
                os.unlink(entry.path)
            except OSError:
                continue
            if jobdir:
                jobs.append(Path(jobdir))
        return jobs

    def preparing(self, *, within: float = 3600.0) -> bool:
        """Whether a macro is preparing a job in ``jobs/`` (a folder there younger than ``within`` s)."""
        now = time.time()
        try:
            return any(now - entry.stat().st_mtime < within for entry in os.scandir(self.file(JOBS)))
        except OSError:
            return False

    def retire(self) -> "SessionDir":
        """Rename the folder away (the worker is stopping) and return it under its new name.

        After this no job can be handed over any more; jobs handed over before are still in
        the renamed folder's queue.
        """
        retired = self.path.with_name(f"{self.path.name}.stopping-{secrets.token_hex(4)}")
        os.rename(self.path, retired)
        return SessionDir(retired)

    def remove(self) -> None:
        """Delete the folder (only this user's real folder, never through a link)."""
        if _private_folder(self.path):
            shutil.rmtree(self.path, ignore_errors=True)

    # -- a command's side ---------------------------------------------------------------------
    def state(self) -> WorkerState:
        """Whether the worker lives: its beat is fresh and its process runs."""
        now = time.time()
        for name, limit in ((BEAT, STALE_AFTER), (SPAWNED, STARTUP_LIMIT)):
            path = self.file(name)
            try:
                process = ProcessRef.parse(read_keyvalues(path).get("pid", ""))
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if process is None:
                continue
            if not process.alive():
                return WorkerState(process, False, "its process is gone", path)
            if age > limit:
                return WorkerState(process, False, f"no sign of life for {age:.0f} s", path)
            return WorkerState(process, True, "", path)
        try:
            age = now - self.path.stat().st_mtime
        except OSError:
            return WorkerState(None, False, "its folder is gone")
        if age > STARTUP_LIMIT:
            return WorkerState(None, False, "it never started")
        return WorkerState(None, True)  # the command that made the folder is starting it

    def claim_restart(self, dead: WorkerState) -> bool:
        """Take on restarting the worker judged ``dead``; False when another command already has.

        The file the judgement rests on is renamed away (atomic: one command wins); where
        there was none, the spawned-pid file is created exclusively.
        """
        try:
            if dead.source is not None:
                os.rename(dead.source, dead.source.with_name(f".{dead.source.name}.{secrets.token_hex(4)}.dead"))
                for stale in (BEAT, SPAWNED):  # neither may make the successor look dead or alive
                    try:
                        os.unlink(self.file(stale))
                    except FileNotFoundError:
                        pass
            else:
                write_new_file(self.file(SPAWNED), b"")
        except OSError:
            return False
        return True

    def enqueue(self, jobdir: Path) -> None:
        """Hand ``jobdir`` to the worker (raises OSError when the folder is gone or stopping)."""
        write_keyvalues(self.file(QUEUE) / f"{jobdir.name}.txt", {"jobdir": jobdir})

    def last_log_line(self) -> str:
        """The worker log's last non-empty line, or ``""``."""
        try:
            lines = self.file(LOG).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")


def sweep_stale_sessions(temp_dir: Path, *, older_than: float = 3600.0) -> list[Path]:
    """Remove worker folders this user's crashed sessions left (no beat for ``older_than`` s)."""
    removed = []
    now = time.time()
    for folder in Path(temp_dir).glob(f"{PREFIX}{_user()}-*"):
        if not _private_folder(folder):
            continue
        beat = folder / BEAT
        try:
            stamp = (beat if beat.exists() else folder).stat().st_mtime
        except OSError:
            continue
        if now - stamp > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
