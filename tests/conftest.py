"""Shared fixtures: a real emdenoise server on 127.0.0.1 and small TIFF stacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.server.subprocess_server import ServerProcess

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


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


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Private user-model and training-job folders (``$EMDENOISE_MODELS``, ``$EMDENOISE_JOBS``)."""
    values = {"EMDENOISE_MODELS": str(tmp_path / "models"), "EMDENOISE_JOBS": str(tmp_path / "jobs")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
