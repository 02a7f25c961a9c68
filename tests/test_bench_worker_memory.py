"""``emdenoise bench worker-memory``: the Fiji warm worker's resident memory over a stack.

A real worker started as an EM command starts it, on a small stack (the figures of the
issue 20 bar come from the full 100 x 1024^2 run in docs/benchmarks.md)."""

from __future__ import annotations

import os

import pytest

from emdenoise.bench.worker_memory import measure
from emdenoise.fiji.procs import pid_alive

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")


def test_worker_rss_is_read_at_each_mark_and_the_worker_is_stopped():
    result = measure("sbd-unet32-hrtem", frames=3, size=128, marks=[1, 3], interval=0.02, timeout=120)
    assert set(result["rss_mib_at"]) == {1, 3}
    assert 50 < result["rss_mib_at"][1] <= result["rss_mib_at"][3] <= result["peak_rss_mib"] + 1
    assert result["job_peak_memory_mib"] > 0 and result["samples"]
    worker = int(result["worker_pid"])
    assert not pid_alive(worker) or _zombie(worker)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line for line in status)
    except OSError:
        return True
