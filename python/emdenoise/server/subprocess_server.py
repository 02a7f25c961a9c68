"""Run ``emdenoise serve`` in a child process on loopback (benchmarks, tests, Fiji bridge)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on (\S+:\d+)")


class ServerProcess:
    """A real server in a child process; ``address`` is ``host:port`` once it listens.

    Parameters
    ----------
    *extra_args : str
        Further ``emdenoise serve`` options (``--models DIR``, ``--max-frame-mib N``...).
    device : str
        ``--device`` for the server.
    startup_timeout : float
        Seconds to wait for the "listening" line.
    """

    def __init__(self, *extra_args: str, device: str = "cpu", startup_timeout: float = 60.0):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "emdenoise", "serve", "--host", "127.0.0.1", "--port", "0", "--device", device]
        self.process = subprocess.Popen(
            [*command, *extra_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = _LISTENING.search(line)
            if match:
                self.address = match.group(1)
                return
        self.process.kill()
        raise RuntimeError("emdenoise server did not start:\n" + "".join(self.lines))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def memory(self) -> dict[str, int]:
        """Resident and peak resident memory (kB) and thread count (Linux /proc)."""
        return process_memory(self.pid)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown), then kill if it does not exit in ``timeout``."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.lines += self.process.stdout.readlines()
        self.process.stdout.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def process_memory(pid: int) -> dict[str, int]:
    """``rss_kb``, ``hwm_kb`` (peak) and ``threads`` of a process, from /proc/PID/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kb": int(fields["VmRSS"].split()[0]),
        "hwm_kb": int(fields["VmHWM"].split()[0]),
        "threads": int(fields["Threads"]),
    }
