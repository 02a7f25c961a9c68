"""The EM commands in Debian's real ImageJ under Xvfb (issue 8's "done when").

Each test is one ImageJ launch with a hard timeout (see ``imagej_helpers``); outputs are
compared with what ``emdenoise denoise`` writes for the same files.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.client import connect
from emdenoise.workflow import denoise_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import (  # noqa: E402
    REPO,
    imagej_env,
    installed_imagej,
    missing_tools,
    run_batch,
    run_harness,
    wait_for_workers_to_exit,
)

pytestmark = [pytest.mark.imagej, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

MODEL = "ede-kernel-tem-5"


@pytest.fixture
def imagej(tmp_path):
    """An ImageJ folder with the commands installed, HOME and temp inside tmp_path."""
    root, home, temp = installed_imagej(tmp_path)
    return root, imagej_env(home, temp), temp


def write_stack(path: Path, shape, *, seed: int = 0, axes: str = "TYX", **metadata) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[-2], : shape[-1]]
    clean = 40 + 20 * np.sin(x / 3.0) * np.cos(y / 4.0)
    data = rng.poisson(np.broadcast_to(clean, shape)).astype(np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": axes, **metadata}, resolution=(5.0, 5.0))
    return data


def leftovers(temp: Path) -> list[Path]:
    """Files in the temp folder, less onnxruntime's '.ses' (written on import, by the CLI too).

    ImageJ has exited when this is called; its warm worker notices within a second and
    removes its own folder, so that folder is waited for (60 s at most) before looking.
    """
    wait_for_workers_to_exit(temp)
    return [p for p in temp.iterdir() if p.name != ".ses"]


def cli_result(source: Path, target: Path, server: str | None = None) -> np.ndarray:
    """What ``emdenoise denoise SOURCE -o TARGET --model MODEL [--server]`` writes."""
    with connect(server) as client:
        denoise_file(client, source, target, model_id=MODEL)
    return tifffile.imread(target)


def test_workflow_macro_in_batch_mode_equals_the_cli(tmp_path, imagej):
    root, env, temp = imagej
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_stack(raw / "movie.tif", (5, 48, 40), unit="nm", finterval=0.25, Labels=[f"t{i}" for i in range(5)])
    write_stack(raw / "hyper.tif", (2, 3, 32, 32), seed=1, axes="TZYX")
    tifffile.imwrite(raw / "colour.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")

    macro = root / "macros" / "emdenoise" / "Denoise_Folder.ijm"
    run = run_batch(macro, f"in=[{raw}] out=[{out}] model={MODEL} server=embedded", imagej_dir=root, env=env)

    assert "Denoise_Folder: 2 written, 0 skipped, 1 failed" in run.output, run.output
    assert "EM Denoise: error: 'colour.tif' is an RGB image" in run.output
    for name, axes in (("movie", "TYX"), ("hyper", "TZYX")):
        produced = out / f"{name}_denoised-{MODEL}.tif"
        expected = cli_result(raw / f"{name}.tif", tmp_path / f"{name}-cli.tif")
        with tifffile.TiffFile(produced) as tif:
            np.testing.assert_array_equal(tif.asarray(), expected)
            assert tif.series[0].axes == axes and tif.pages.first.dtype == np.float32
            meta = tif.imagej_metadata
            assert f"emdenoise.model = {MODEL}" in meta["Info"]
            assert f"emdenoise.source = {name}.tif" in meta["Info"]
            assert tif.pages.first.tags["XResolution"].value[0] / tif.pages.first.tags["XResolution"].value[1] == 5.0
        if name == "movie":
            assert meta["unit"] == "nm" and meta["finterval"] == 0.25 and meta["Labels"] == [f"t{i}" for i in range(5)]
    assert leftovers(temp) == [], "the commands left temporary files behind"
    print(f"workflow macro: {run.seconds:.1f} s for 2 stacks + 1 refused file")


@pytest.fixture
def live_server(tmp_path):
    """``emdenoise serve`` on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "emdenoise", "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{port}"
    try:
        with connect(address) as client:
            client.wait_ready(timeout=60)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_from_another_macro_against_a_live_server_and_its_failures(tmp_path, imagej, live_server):
    root, env, temp = imagej
    source = tmp_path / "series.tif"
    write_stack(source, (4, 40, 40), seed=3, unit="nm")
    dead = f"127.0.0.1:{free_port()}"
    result = tmp_path / "from-macro.tif"
    macro = tmp_path / "lab.ijm"
    macro.write_text(
        f"""
run("EM Server Settings", "address={live_server}");
open("{source}");
run("EM Denoise", "model={MODEL} server={live_server}");
print("title: " + getTitle());
saveAs("Tiff", "{result}");
print("--- unknown model");
run("EM Denoise", "model=no-such-model server={live_server}");
print("--- server not running");
run("EM Denoise", "model={MODEL} server={dead}");
close("*");
print("--- empty");
run("EM Denoise", "model={MODEL}");
newImage("rgb", "RGB black", 32, 32, 1);
print("--- rgb");
run("EM Denoise", "model={MODEL}");
print("end of lab macro");
"""
    )
    run = run_batch(macro, "", imagej_dir=root, env=env)
    out = run.output
    assert f"EM Server Settings: using {live_server}" in out, out
    assert f"title: series_denoised-{MODEL}.tif" in out
    np.testing.assert_array_equal(tifffile.imread(result), cli_result(source, tmp_path / "cli.tif", live_server))
    assert "emdenoise.device = cpu" in tifffile.TiffFile(result).imagej_metadata["Info"]
    sections = {}
    for part in out.split("--- ")[1:]:
        name, _, body = part.partition("\n")
        errors = [line for line in body.splitlines() if line.startswith("EM Denoise: error:")]
        sections[name] = errors[0] if errors else body
    assert "no-such-model" in sections["unknown model"], sections
    assert sections["server not running"] == (
        f"EM Denoise: error: cannot reach the emdenoise server at {dead}; start it with "
        f"'emdenoise serve --port {dead.rsplit(':', 1)[1]}' or leave the server unset to use the embedded engine."
    )
    assert sections["empty"].startswith("EM Denoise: error: no image is open")
    assert sections["rgb"].startswith("EM Denoise: error: 'rgb' is an RGB image")
    assert "end of lab macro" in out and "Exception" not in out and "\tat " not in out
    assert leftovers(temp) == []
    print(f"lab macro against a server: {run.seconds:.1f} s")


def test_recorder_records_the_dialog_options(tmp_path, imagej):
    root, env, _ = imagej
    source = tmp_path / "stack.tif"
    write_stack(source, (3, 32, 32))
    run = run_harness(
        "--open", str(source), "--record", f"model={MODEL};server=embedded;tile=128;residual=true",
        imagej_dir=root, env=env,
    )
    recorded = run.output.split("RECORDER>>>\n", 1)[1].split("<<<RECORDER", 1)[0]
    print("recorder output:\n" + recorded)
    assert (
        f'run("EM Denoise", "model={MODEL} modality=any server=embedded tile=128 gain=0.0000 offset=0 '
        'output=[32-bit float] residual");'
    ) in recorded
    assert "IMAGES 1 -> 3" in run.output  # the result and the residual
    assert not run.dialogs, run.dialogs


def test_plugins_menu_screenshot(tmp_path, imagej):
    root, env, _ = imagej
    shot = tmp_path / "fiji-plugins-menu.png"
    run = run_harness("--menu-screenshot", str(shot), imagej_dir=root, env=env)
    assert "'emdenoise'" in run.output and not run.dialogs, run.output
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape[0] > 150 and image.std() > 10  # a real capture, not a blank screen
    if os.environ.get("EMDENOISE_UPDATE_DOCS"):  # refreshes the picture in the docs
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "fiji-plugins-menu.png")


def test_thousand_frame_stack_streams_with_bounded_memory(tmp_path, imagej):
    root, env, temp = imagej
    big, small = tmp_path / "big.tif", tmp_path / "small.tif"
    write_stack(big, (1000, 64, 64), seed=4)
    write_stack(small, (10, 64, 64), seed=5)
    macro = tmp_path / "movie.ijm"
    macro.write_text(
        f"""
open("{small}");
run("EM Denoise", "model={MODEL}");
close("*");
t0 = getTime();
open("{big}");
run("EM Denoise", "model={MODEL}");
print("frames: " + nSlices + ", ImageJ wall " + (getTime() - t0) + " ms");
"""
    )
    run = run_batch(macro, "", imagej_dir=root, env=env, timeout=120)
    out = run.output
    peaks = [float(p) for p in re.findall(r"worker peak ([0-9.]+) MiB", out)]
    progress = [int(d) for d in re.findall(r"EM Denoise: (\d+)/1000 frames", out)]
    print(out)
    assert "frames: 1000" in out and len(peaks) == 2, out
    # progress lines advance while the frames stream (every 0.5 s in batch mode), ending at 1000
    assert len(progress) >= 2 and progress[0] < 1000 and progress[-1] == 1000, progress
    assert all(a < b for a, b in zip(progress, progress[1:])), progress
    # float32 output of 1000 frames is 15.6 MiB; a worker that held the stack would grow by that
    assert peaks[1] - peaks[0] < 8.0, peaks
    assert leftovers(temp) == []


def test_escape_cancels_a_running_job(tmp_path, imagej):
    """Esc aborts the macro; the worker sees its heartbeat stop, cancels and cleans up."""
    root, env, temp = imagej
    source = tmp_path / "long.tif"
    write_stack(source, (400, 64, 64), seed=6)
    run = run_harness(
        "--gui", "--open", str(source), "--escape", "model=classical-bm3d server=embedded", "--temp", str(temp),
        imagej_dir=root, env=env,
    )
    print(run.output)
    assert "JOB-RUNNING True" in run.output
    left = re.search(r"JOB-FOLDERS-LEFT (\d+) after ([0-9.]+) s", run.output)
    assert left and left.group(1) == "0", run.output
    assert "IMAGES 1 -> 1" in run.output  # no result window
    assert leftovers(temp) == []
