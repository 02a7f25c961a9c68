"""Shared fixtures: a real emdenoise server on 127.0.0.1 and small TIFF stacks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


class ServerProcess:
    """``emdenoise serve --port 0`` in a subprocess; ``address`` is host:port."""

    def __init__(self, *extra_args: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emdenoise", "serve", "--host", "127.0.0.1", "--port", "0", "--device", "cpu", *extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        self.lines: list[str] = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
            if match:
                self.address = match.group(1)
                return
        self.process.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.lines += self.process.stdout.readlines()
        self.process.stdout.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def server():
    """One real server for the whole session (CPU, bundled models)."""
    process = ServerProcess()
    yield process
    process.stop()


@pytest.fixture
def calibrated_stack(tmp_path) -> Path:
    """A 6-frame uint16 ImageJ stack with pixel size, unit, labels and frame interval."""
    rng = np.random.default_rng(7)
    stack = rng.poisson(40, size=(6, 96, 80)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 0.125, 1 / 0.125),
        metadata={"axes": "TYX", "unit": "nm", "finterval": 0.5, "Labels": [f"frame-{i}" for i in range(6)]},
    )
    return path
