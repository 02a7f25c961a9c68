"""Start a worker process that outlives the short command ImageJ's ``exec()`` waits for.

ImageJ's macro ``exec()`` returns when the started program closes its output, so the
worker gets its own output file and session (POSIX) or a detached console-less process
group (Windows); the launcher then exits at once and the macro polls the job folder.

The worker never imports code from where it runs: :func:`python_module_argv` starts it
with ``-P`` (Python 3.11+; a ``sys.path`` bootstrap before), so a ``numpy.py`` in the job
folder or the working directory is not on its path, and :func:`safe_cwd` gives it a
working directory outside the job folder.

The launcher itself (``newjob``, ``start``, ``models``, ``clean``) runs from ImageJ's own
working directory, wherever Fiji was started. The macros therefore start it as
``python -c MACRO_BOOTSTRAP MODULE ARGS...``: :data:`MACRO_BOOTSTRAP` drops the working
directory from ``sys.path`` before anything is imported (``python -m`` would put it first,
so an ``argparse.py`` or ``emdenoise/`` there would run) and works on every Python the
package supports, unlike ``-P``; the bridge then leaves that directory
(:func:`emdenoise.fiji.bridge.launcher_main`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


#: What the macros pass to ``python -c``, followed by the module to run and its arguments.
MACRO_BOOTSTRAP = (
    "import os, sys; here = os.getcwd(); "
    "sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]; "
    "import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
)


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
    import subprocess  # here: the bridge's verbs that start nothing need not load it

    options: dict = {}
    if os.name == "nt":
        options["creationflags"] = (
            subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        )
    else:
        options["start_new_session"] = True
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(log_path, flags, 0o600), "ab") as log:  # a planted link is not followed
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
    """This Python running ``module`` with ``args``, the working directory left off ``sys.path``.

    ``[python, -P, -m, module, *args]`` on Python 3.11+; before, ``-c`` with a bootstrap
    that drops ``sys.path[0]`` (the working directory) and runs the module as ``__main__``.
    """
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module, *args]
    bootstrap = f"import runpy, sys; del sys.path[0]; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", bootstrap, *args]


def safe_cwd() -> Path:
    """A working directory for a worker that holds none of the job's files (the user's home, else the root)."""
    home = Path.home()
    return home if home.is_dir() else Path(os.path.abspath(os.sep))
