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


def _write_stacks(folder: Path, count: int, seed: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"movie{index}.tif"
        tifffile.imwrite(path, rng.poisson(3.0, size=(3, 256, 256)).astype(np.uint16), imagej=True,
                         resolution=(8.0, 8.0), metadata={"axes": "TYX", "unit": "nm"})
        paths.append(path)
    return paths


def _emdenoise(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``emdenoise denoise ARGS`` in a fresh process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "emdenoise", "denoise", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _address(cluster) -> str:
    return cluster.scheduler_info()["address"]


def test_folder_with_a_corrupt_file_finishes_the_others(cluster, tmp_path, engine):
    inputs = _write_stacks(tmp_path / "in", 3)
    (tmp_path / "in" / "broken.tif").write_bytes(inputs[0].read_bytes()[:3000])  # truncated copy
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", KERNEL, "--dask", _address(cluster)]
    first = _emdenoise(*args)
    assert first.returncode == 1, first.stderr
    assert "3 written, 0 skipped, 1 failed" in first.stdout
    broken_line = next(line for line in first.stdout.splitlines() if line.startswith("broken.tif"))
    assert "failed" in broken_line and "Traceback" not in first.stderr
    written = tifffile.TiffFile(tmp_path / "out" / f"movie1_denoised-{KERNEL}.tif")
    with written:
        assert "emdenoise.model = ede-kernel-stem-5" in written.imagej_metadata["Info"]
        np.testing.assert_allclose(written.asarray(), engine.denoise(tifffile.imread(inputs[1]), KERNEL), atol=1e-3)
    again = _emdenoise(*args)  # finished outputs are skipped, the bad file fails again
    assert again.returncode == 1 and "0 written, 3 skipped, 1 failed" in again.stdout


def test_one_stack_streams_into_zarr_with_provenance_and_calibration(tmp_path, engine):
    zarr = pytest.importorskip("zarr")
    (source,) = _write_stacks(tmp_path / "in", 1)
    target = tmp_path / "clean.zarr"
    run = _emdenoise(str(source), "-o", str(target), "--model", KERNEL, "--dask", "local:2")
    assert run.returncode == 0, run.stderr
    array = zarr.open_array(str(target), mode="r")
    assert array.dtype == np.float32 and array.chunks == (1, 256, 256)
    assert array.attrs["emdenoise"]["model"] == KERNEL and array.attrs["emdenoise"]["source"] == source.name
    assert array.attrs["calibration"]["pixel_size"] == pytest.approx(0.125)
    assert array.attrs["calibration"]["unit"] == "nm"
    np.testing.assert_allclose(array[:], engine.denoise(tifffile.imread(source), KERNEL), atol=1e-3)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_killing_a_worker_mid_run_is_finished_by_a_rerun(cluster, tmp_path, engine):
    inputs = _write_stacks(tmp_path / "in", 6, seed=9)
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), "-o", str(out), "--model", UNET, "--gain", "1", "--offset", "0",
            "--dask", _address(cluster)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.Popen([sys.executable, "-m", "emdenoise", "denoise", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    victim = next(iter(cluster.run(os.getpid).values()))
    deadline = time.monotonic() + 60
    while not list(out.glob("*.tif")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)  # mid-run: one file written, others running or queued
    stdout, stderr = run.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    rerun = _emdenoise(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "0 failed" in rerun.stdout
    for source in inputs:
        target = out / f"{source.stem}_denoised-{UNET}.tif"
        with tifffile.TiffFile(target) as written:
            assert written.asarray().shape == (3, 256, 256)
    np.testing.assert_allclose(tifffile.imread(out / f"movie5_denoised-{UNET}.tif"),
                               engine.denoise(tifffile.imread(inputs[5]), UNET, gain=1.0, offset=0.0), atol=1e-3)


def test_server_chunks_equal_the_embedded_engine(cluster, server, stack, engine):
    result = emd.denoise(da.from_array(stack, chunks=(2, 256, 256)), KERNEL, server=server.address)
    np.testing.assert_allclose(cluster.compute(result).result(), engine.denoise(stack, KERNEL), rtol=1e-5, atol=1e-3)


def test_import_dask_inside_emdenoise_is_the_real_dask():
    import emdenoise.cluster.lazy as lazy

    assert lazy.da.map_overlap is da.map_overlap
    assert Path(lazy.dask.__file__).parent.name == "dask" and "emdenoise" not in lazy.dask.__file__
