"""Whether a process still runs, and which process a pid names (standard library only).

The Fiji session worker (:mod:`emdenoise.fiji.session`) outlives the short bridge commands
and must notice when ImageJ is gone; a bridge command must notice when the worker is gone.
A pid alone is not enough: after a process exits its pid can be given to another one, and
an exited child that its parent has not reaped yet (a zombie) still answers ``kill(pid, 0)``.
So a process is named by a :class:`ProcessRef`, its pid and its start time where the system
tells it (Linux: ``/proc/PID/stat``), and :meth:`ProcessRef.alive` is false for a zombie and
for a pid that now names a process started at another time.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None where there is no such file."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    return text[text.rfind(")") + 2:].split()


def start_time(pid: int) -> str:
    """When process ``pid`` started, as the system counts it (clock ticks since boot on Linux).

    Parameters
    ----------
    pid : int

    Returns
    -------
    str
        The start time, or ``""`` where the system does not say (not Linux, or no such process).
    """
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie does not).

    Parameters
    ----------
    pid : int

    Returns
    -------
    bool
    """
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process has this pid: ours is gone
        return False
    fields = _stat_fields(pid)
    return not (fields and fields[0] in ("Z", "X"))


def _windows_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return False
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


@dataclass(frozen=True)
class ProcessRef:
    """One process: its pid and, where known, its start time (so a reused pid is not mistaken for it).

    Parameters
    ----------
    pid : int
    started : str
        :func:`start_time` when the reference was taken (``""`` where unknown).
    """

    pid: int
    started: str = ""

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        """A reference to the running process ``pid``."""
        return cls(int(pid), start_time(int(pid)))

    @classmethod
    def parse(cls, text: str) -> "ProcessRef | None":
        """The reference :meth:`__str__` wrote (``PID`` or ``PID:START``), None when malformed."""
        pid, _, started = (text or "").strip().partition(":")
        return cls(int(pid), started) if pid.isdigit() else None

    def __str__(self) -> str:
        return f"{self.pid}:{self.started}" if self.started else str(self.pid)

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not a later process given its pid)."""
        if not pid_alive(self.pid):
            return False
        return not self.started or start_time(self.pid) in ("", self.started)

    def kill(self) -> None:
        """Stop this process at once (SIGKILL; TerminateProcess on Windows) if it still runs."""
        if not self.alive():
            return
        try:
            os.kill(self.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        except OSError:
            pass
