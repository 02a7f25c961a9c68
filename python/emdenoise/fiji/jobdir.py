"""The folder through which an ImageJ macro and a background emdenoise worker talk.

The Fiji commands (``fiji-macros/``) cannot call Python in-process, and ImageJ's macro
``exec()`` blocks without progress. So a command asks ``bridge newjob TEMP`` for a private
job folder in ImageJ's temp directory (:func:`create_job_dir`: a fresh random name made by
``mkdtemp``, mode 0700, so other users can neither read the exported micrograph nor plant
files or links in it), writes its request there (``key=value`` lines), hands it to a
worker (``bridge start``: the ImageJ session's warm worker, :mod:`emdenoise.fiji.session`)
and polls the status file the worker rewrites after every frame. The macro touches
a heartbeat file while it polls; when the heartbeat stops (Esc aborted the macro, ImageJ
quit), the worker cancels the job and removes the folder. The worker touches its own
beat file (:data:`WORKER_BEAT`) twice a second; when that stops while the status still
says running (the worker was killed, by the kernel's OOM killer for one, or could not
write its status), the macro reports it instead of polling forever.

Every file is plain text, written atomically through a new file opened with ``O_EXCL``
and ``O_NOFOLLOW`` and renamed, so the macro never reads half a status and no write
follows a symbolic link.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path

#: Files of a job folder (the macros use the same names).
REQUEST = "request.txt"
STATUS = "status.txt"
HEARTBEAT = "heartbeat.txt"
LOG = "worker.log"
WORKER_BEAT = "worker-beat.txt"
PREFIX = "emdenoise-job-"

#: Seconds without a heartbeat after which the worker treats the job as cancelled.
HEARTBEAT_TIMEOUT = 6.0
#: Seconds between the worker's own beats (the macro gives up after 20 s without one).
WORKER_BEAT_INTERVAL = 0.5

#: Flags of a file that must be new: never an existing file, never through a link.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def create_job_dir(temp_dir: str | os.PathLike | None = None) -> Path:
    """Make a private job folder (fresh random name, mode 0700) in ``temp_dir``.

    Parameters
    ----------
    temp_dir : path, optional
        The folder to create it in (ImageJ's temp folder); the system's by default.

    Returns
    -------
    Path
        The new folder, empty, readable and writable by this user only.
    """
    return Path(tempfile.mkdtemp(prefix=PREFIX, dir=None if temp_dir in (None, "") else str(temp_dir)))


def write_new_file(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path``, which must not exist yet (no link is followed; mode 0600)."""
    fd = os.open(path, _NEW_FILE, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def temp_folder_of(job_path: str | os.PathLike) -> Path:
    """ImageJ's temp folder for a job folder: its parent, or, for a job folder a macro made
    inside a warm worker's folder (``TEMP/emdenoise-worker-*/jobs/JOB``), that folder's parent."""
    parent = Path(job_path).parent
    if parent.name == "jobs" and parent.parent.name.startswith("emdenoise-worker-"):
        return parent.parent.parent
    return parent


def private_log(temp_dir: str | os.PathLike, prefix: str) -> Path:
    """A new log file with a random name in ``temp_dir`` (``mkstemp``: 0600, no link followed)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".log", dir=str(temp_dir))
    os.close(fd)
    return Path(name)


def read_keyvalues(path: Path) -> dict[str, str]:
    """Parse ``key=value`` lines (blank lines and ``#`` comments ignored)."""
    values: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def write_keyvalues(path: Path, values: dict[str, object]) -> None:
    """Write ``key=value`` lines atomically (temporary file, then rename)."""
    path = Path(path)
    text = "".join(f"{key}={_one_line(value)}\n" for key, value in values.items())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write_new_file(temporary, text.encode("utf-8"))
    try:
        os.replace(temporary, path)  # replaces a link named ``path`` itself, never its target
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


class JobDir:
    """One job's folder: request in, status and results out."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def request(self) -> dict[str, str]:
        """The macro's request (``action``, ``input``, ``output``, ``model``...)."""
        path = self.file(REQUEST)
        if not path.is_file():
            raise FileNotFoundError(f"job folder {self.path} has no {REQUEST}")
        return read_keyvalues(path)

    def write_status(self, state: str, **values: object) -> None:
        """Replace the status file: ``state`` (running | done | error | cancelled) first."""
        write_keyvalues(self.file(STATUS), {"state": state, **values})

    def beat(self) -> None:
        """The worker's sign of life: rewrite :data:`WORKER_BEAT` (the macro checks its age)."""
        write_keyvalues(self.file(WORKER_BEAT), {"pid": os.getpid(), "time": f"{time.time():.3f}"})

    def heartbeat_age(self) -> float | None:
        """Seconds since the macro last touched the heartbeat (None before the first beat)."""
        try:
            return time.time() - self.file(HEARTBEAT).stat().st_mtime
        except FileNotFoundError:
            return None

    def remove(self) -> None:
        """Delete the job folder and everything in it (only a folder of this user, never a link)."""
        if _own_folder(self.path):
            shutil.rmtree(self.path, ignore_errors=True)


def _own_folder(path: Path) -> bool:
    """Whether ``path`` is a real folder (not a link) owned by this user."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner


def sweep_stale_jobs(temp_dir: Path, *, older_than: float = 3600.0) -> list[Path]:
    """Remove job folders left by crashed sessions (no heartbeat for ``older_than`` s)."""
    removed = []
    now = time.time()
    for folder in Path(temp_dir).glob(PREFIX + "*"):
        if not _own_folder(folder):  # another user's folder, or a link planted to look like one
            continue
        beat = folder / HEARTBEAT
        stamp = (beat if beat.exists() else folder).stat().st_mtime
        if now - stamp > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
