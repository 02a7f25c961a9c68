"""Cancellation that stops the computation, and SIGTERM within the grace period (issue 22, item 5)."""

from __future__ import annotations

import os
import signal
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


def start_long_job(address: str, model: str = SLOW[0], frames: int = 1):
    """``frames`` 2048^2 frames through ``model`` in a thread; returns (job, thread, outcome list)."""
    frame = np.random.default_rng(0).poisson(2.0, (2048, 2048)).astype(np.float32)
    client = RemoteClient(address)
    job = client.denoise([frame] * frames, model, **({"frame_count": frames} if frames > 1 else {}))
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


@pytest.mark.parametrize("model", ["sbd-unet32-hrtem", "classical-nlm"],
                         ids=["tiled-network", "uninterruptible-classical-filter"])
def test_sigterm_exits_within_the_grace_period_with_a_long_job_running(model):
    """The process is gone before the grace period is over, counted from SIGTERM, not grace + 1 s.

    The tiled network stops between tile batches once its call is cancelled; the classical
    non-local means filter runs the whole frame in one call that nothing can interrupt, so
    only ending the process in time keeps the promise.
    """
    grace = 2.0
    server = ServerProcess("--grace", str(grace), *SLOW[1:])
    try:
        job, thread, outcome = start_long_job(server.address, model, frames=4)
        wait_busy(server.pid)
        start = time.monotonic()
        server.stop(timeout=60)
        took = time.monotonic() - start
    finally:
        if server.alive:
            server.process.kill()
    thread.join(10)
    print(f"SIGTERM with a {model} job running: exited in {took:.2f} s (grace {grace:g} s)")
    assert took < grace, f"SIGTERM took {took:.2f} s with --grace {grace:g}"
    assert server.process.returncode == 0, server.lines
    assert any("server stopped" in line for line in server.lines), server.lines
    assert outcome and isinstance(outcome[0], UserError)  # the job ended with a sentence, not a hang


def test_a_call_that_ends_within_the_grace_period_completes():
    """SIGTERM right after a short job started: it still returns every frame, then the server exits."""
    grace = 5.0
    server = ServerProcess("--grace", str(grace))
    try:
        frames = [np.random.default_rng(i).poisson(30, (256, 256)).astype(np.uint16) for i in range(3)]
        with RemoteClient(server.address) as client:
            job = client.denoise(frames, "ede-kernel-tem-3", frame_count=3)
            results = []
            for result in job:
                if not results:
                    start = time.monotonic()
                    server.process.send_signal(signal.SIGTERM)
                results.append(result)
        server.process.wait(timeout=30)
        took = time.monotonic() - start
    finally:
        if server.alive:
            server.process.kill()
        server.stop()
    assert len(results) == 3 and all(r.shape == (256, 256) and np.isfinite(r).all() for r in results)
    assert took < grace / 2, f"with no call left the server took {took:.2f} s to exit (grace {grace:g} s)"
    assert server.process.returncode == 0, server.lines
