"""emdenoise.dask and ``denoise --dask`` on a real LocalCluster (issue 19).

Two worker processes of one thread each: results must equal the embedded engine's for
any chunking (chunks smaller than the receptive field included), each worker must load a
model once, a lazy HyperSpy signal must keep its calibration, a folder run must finish
past a corrupt file, and a run whose worker is killed must be completed by a rerun.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from emdenoise import dask as emd  # noqa: E402
from emdenoise.engine import Engine  # noqa: E402

KERNEL = "ede-kernel-stem-5"
UNET = "sbd-smallunet-hrtem"  # receptive field 47, one pooling level (tile.multiple_of 2)
CHUNKINGS = [(3, 256, 256), (2, 64, 96), (1, 100, 37), (1, 20, 20)]  # the last is smaller than the U-Net's field


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as local:
        with distributed.Client(local) as client:
            yield client


@pytest.fixture(scope="module")
def stack():
    return np.random.default_rng(19).poisson(3.0, size=(3, 256, 256)).astype(np.uint16)


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def _options(model):
    return {"gain": 1.0, "offset": 0.0} if model == UNET else {}


@pytest.mark.parametrize("model", [KERNEL, UNET])
def test_results_equal_the_embedded_engine_for_any_chunking(cluster, stack, engine, model):
    expected = engine.denoise(stack, model, **_options(model))
    for chunks in CHUNKINGS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dose outside the card's range; rechunking is checked below
            result = emd.denoise(da.from_array(stack, chunks=chunks), model, **_options(model))
        assert result.dtype == np.float32 and result.shape == stack.shape
        computed = cluster.compute(result).result()
        np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-4 * float(np.abs(expected).max()),
                                   err_msg=f"{model} chunks {chunks}")
    # one session per model per worker process, however many chunks it ran
    sessions = cluster.run(lambda: __import__("emdenoise.cluster.sessions", fromlist=["x"]).cached_sessions())
    assert len(sessions) == 2 and all(1 <= count <= 2 for count in sessions.values()), sessions


def test_chunks_smaller_than_the_overlap_are_merged_with_a_warning(stack):
    with pytest.warns(emd.ChunkingWarning, match="rechunked"):
        result = emd.denoise(da.from_array(stack, chunks=(1, 16, 16)), UNET, gain=1.0, offset=0.0)
    assert min(result.chunks[-1]) >= 24  # receptive-field radius 23 + multiple_of 2 - 1


def test_whole_frame_models_get_whole_frames(stack):
    with pytest.warns(emd.ChunkingWarning, match="whole 256x256 frames"):
        result = emd.denoise(da.from_array(stack, chunks=(1, 64, 64)), "ede-xception-w025-tem-low")
    assert result.chunks[-2:] == ((256,), (256,))


def test_lazy_hyperspy_signal_keeps_its_calibration(cluster, tmp_path, stack, engine):
    hs = pytest.importorskip("hyperspy.api")
    source = hs.signals.Signal2D(stack)
    time_axis = source.axes_manager.navigation_axes[0]
    time_axis.name, time_axis.scale, time_axis.units = "time", 0.5, "s"
    for axis, name in zip(source.axes_manager.signal_axes, "xy"):
        axis.name, axis.scale, axis.offset, axis.units = name, 0.125, 2.0, "nm"
    source.metadata.General.title = "movie"
    source.save(tmp_path / "movie.hspy")
    lazy = hs.load(tmp_path / "movie.hspy", lazy=True)

    out = emd.denoise_signal(lazy, KERNEL)
    assert out._lazy and out.metadata.emdenoise.model == KERNEL
    assert out.metadata.General.title == f"movie (denoised, {KERNEL})"
    out.compute()  # on the cluster (HDF5 files can be read by workers, written only here)
    out.save(tmp_path / "clean.hspy")
    back = hs.load(tmp_path / "clean.hspy")
    assert [(a.name, a.scale, a.offset, a.units) for a in back.axes_manager.signal_axes] == [("x", 0.125, 2.0, "nm"),
                                                                                            ("y", 0.125, 2.0, "nm")]
    assert (back.axes_manager.navigation_axes[0].scale, back.axes_manager.navigation_axes[0].units) == (0.5, "s")
    assert back.metadata.emdenoise.graph_sha256 == engine.card(KERNEL).graph_sha256()
    np.testing.assert_allclose(back.data, engine.denoise(stack, KERNEL), rtol=1e-5, atol=1e-3)
