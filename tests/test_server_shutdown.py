"""Cancellation that stops the computation, and SIGTERM within the grace period (issue 22, item 5)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from emdenoise.client import RemoteClient
from emdenoise.errors import UserError
from emdenoise.server.subprocess_server import ServerProcess

#: A slow model on small tiles, one per batch: a 2048^2 frame is ~100 tiles of ~0.1-0.5 s.
SLOW = ("sbd-unet32-hrtem", "--batch-size", "1", "--tile-size", "256")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_long_job(address: str):
    """A 2048^2 frame through the slow model in a thread; returns (job, thread, outcome list)."""
    frame = np.random.default_rng(0).poisson(2.0, (2048, 2048)).astype(np.float32)
    client = RemoteClient(address)
    job = client.denoise([frame], SLOW[0])
    outcome: list = []

    def run():
        try:
            outcome.append(list(job))
        except UserError as error:
            outcome.append(error)
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return job, thread, outcome


def wait_busy(pid: int, seconds: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the server has computed for ``seconds`` of CPU (the frame arrived and runs)."""
    start, deadline = cpu_seconds(pid), time.monotonic() + timeout
    while cpu_seconds(pid) - start < seconds:
        assert time.monotonic() < deadline, "the server never started computing"
        time.sleep(0.1)


def test_cancelled_denoise_stops_the_engine_between_tiles():
    with ServerProcess(*SLOW[1:]) as server:
        job, thread, outcome = start_long_job(server.address)
        wait_busy(server.pid)
        job.cancel()
        thread.join(10)
        time.sleep(1.0)  # the tile batch running at the cancellation may finish
        before = cpu_seconds(server.pid)
        time.sleep(3.0)
        spent = cpu_seconds(server.pid) - before
        assert spent < 0.5, f"the server kept computing {spent:.1f} s of CPU in 3 s after the cancellation"
        assert server.alive


def test_sigterm_exits_within_the_grace_period_with_a_long_job_running():
    grace = 2.0
    server = ServerProcess("--grace", str(grace), *SLOW[1:])
    try:
        job, thread, outcome = start_long_job(server.address)
        wait_busy(server.pid)
        start = time.monotonic()
        server.stop(timeout=60)
        took = time.monotonic() - start
    finally:
        if server.alive:
            server.process.kill()
    thread.join(10)
    print(f"SIGTERM with a job running: exited in {took:.2f} s (grace {grace:g} s)")
    assert took < grace + 2.0, took
    assert any("server stopped" in line for line in server.lines), server.lines
    assert outcome and isinstance(outcome[0], UserError)  # the job ended with a sentence, not a hang
