"""Start a worker process that outlives the short command ImageJ's ``exec()`` waits for.

ImageJ's macro ``exec()`` returns when the started program closes its output, so the
worker gets its own output file and session (POSIX) or a detached console-less process
group (Windows); the launcher then exits at once and the macro polls the job folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def spawn_detached(argv: list[str], *, log_path: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` detached from this process, output appended to ``log_path``.

    Parameters
    ----------
    argv : list of str
        Program and arguments (no shell).
    log_path : Path
        File that receives the worker's stdout and stderr.
    cwd : Path, optional
        Working directory of the worker.

    Returns
    -------
    int
        The worker's process id.
    """
    options: dict = {}
    if os.name == "nt":
        options["creationflags"] = (
            subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        )
    else:
        options["start_new_session"] = True
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            close_fds=True,
            **options,
        )
    return process.pid


def python_module_argv(module: str, *args: str) -> list[str]:
    """``[this python, -m, module, *args]``: the worker runs in this same environment."""
    return [sys.executable, "-m", module, *args]
