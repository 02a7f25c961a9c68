"""The folder through which an ImageJ macro and a background emdenoise worker talk.

The Fiji commands (``fiji-macros/``) cannot call Python in-process, and ImageJ's macro
``exec()`` blocks without progress. So a command creates a job folder in ImageJ's temp
directory, writes its request there (``key=value`` lines), starts a detached worker and
polls the status file the worker rewrites after every frame. The macro touches a
heartbeat file while it polls; when the heartbeat stops (Esc aborted the macro, ImageJ
quit), the worker cancels the job and removes the folder.

Every file is plain text, written atomically, so the macro never reads half a status.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

#: Files of a job folder (the macros use the same names).
REQUEST = "request.txt"
STATUS = "status.txt"
HEARTBEAT = "heartbeat.txt"
LOG = "worker.log"
PREFIX = "emdenoise-job-"

#: Seconds without a heartbeat after which the worker treats the job as cancelled.
HEARTBEAT_TIMEOUT = 6.0


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
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


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

    def heartbeat_age(self) -> float | None:
        """Seconds since the macro last touched the heartbeat (None before the first beat)."""
        try:
            return time.time() - self.file(HEARTBEAT).stat().st_mtime
        except FileNotFoundError:
            return None

    def remove(self) -> None:
        """Delete the job folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)


def sweep_stale_jobs(temp_dir: Path, *, older_than: float = 3600.0) -> list[Path]:
    """Remove job folders left by crashed sessions (no heartbeat for ``older_than`` s)."""
    removed = []
    now = time.time()
    for folder in Path(temp_dir).glob(PREFIX + "*"):
        if not folder.is_dir():
            continue
        beat = folder / HEARTBEAT
        stamp = (beat if beat.exists() else folder).stat().st_mtime
        if now - stamp > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
