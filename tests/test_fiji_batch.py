"""Batch runs as documented (issue 21, item 1), with real ImageJ 1.53t and a fresh HOME.

``emdenoise fiji install --fiji ~/.imagej`` on a HOME where ImageJ never ran, then the
command it prints; a macro naming an unknown command ends within seconds; ``fiji launch
--headless --batch`` uses the embedded engine (not the server a GUI session saved) and
exits 1 when EM Denoise fails. Every run has a hard timeout, so a hang fails the test.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from imagej_helpers import IJ_JAR, _run, missing_inprocess_tools  # noqa: E402

pytestmark = [
    pytest.mark.imagej,
    pytest.mark.skipif(missing_inprocess_tools() is not None, reason=str(missing_inprocess_tools())),
]
needs_display = pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")


@pytest.fixture
def home(tmp_path):
    """A HOME where ImageJ has never run (no ~/.imagej), with its own temp folder."""
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    return home


def env_of(home: Path) -> dict:
    import os

    env = dict(os.environ)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               ORT_DISABLE_TELEMETRY="1", _JAVA_OPTIONS=f"-Duser.home={home} -Djava.io.tmpdir={home / 'tmp'}")
    env.pop("DISPLAY", None)  # the printed emdenoise command needs no display
    return env


def install_into_fresh_home(home: Path) -> list[str]:
    """``emdenoise fiji install --fiji ~/.imagej`` as a user types it; its output lines."""
    out = subprocess.run([sys.executable, "-m", "emdenoise", "fiji", "install", "--fiji", "~/.imagej"],
                         env=env_of(home), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def printed_command(lines: list[str], marker: str, raw: Path, out: Path) -> str:
    """The printed command line after ``marker``, with the example folders replaced."""
    index = next(i for i, line in enumerate(lines) if line.startswith(marker))
    return lines[index + 1].strip().replace("/data/raw", str(raw)).replace("/data/denoised", str(out))


def three_tiffs(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        tifffile.imwrite(folder / f"frame{i}.tif", rng.poisson(30, (40, 48)).astype(np.uint16))


def test_fresh_home_install_then_the_printed_batch_command_denoises_a_folder(home, tmp_path):
    lines = install_into_fresh_home(home)
    imagej = home / ".imagej"
    assert (imagej / "plugins" / "emdenoise" / "EM_Denoise.ijm").is_file()
    assert (imagej / "macros" / "emdenoise" / "Denoise_Folder.ijm").is_file()
    assert f"example lab macros: {imagej / 'macros' / 'emdenoise'}" in lines
    three_tiffs(tmp_path / "raw")
    command = printed_command(lines, "denoise a folder in batch", tmp_path / "raw", tmp_path / "out")
    assert f"--fiji {imagej} --batch {imagej}/macros/emdenoise/Denoise_Folder.ijm" in command
    run = _run(shlex.split(command), timeout=180, env=env_of(home), cwd=tmp_path)
    print(run.output)
    assert run.returncode == 0, run.output
    assert "Denoise_Folder: 3 written, 0 skipped, 0 failed" in run.output
    assert "embedded engine" in run.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 3 and all("_denoised-" in name for name in written)


@needs_display
def test_imagej_own_batch_with_ijpath_finds_the_commands(home, tmp_path):
    """The second printed command: ImageJ's -batch with -ijpath ~/.imagej, under xvfb-run."""
    lines = install_into_fresh_home(home)
    three_tiffs(tmp_path / "raw")
    command = printed_command(lines, "or with ImageJ's own -batch", tmp_path / "raw", tmp_path / "out")
    assert command.startswith(f"xvfb-run -a java -jar {IJ_JAR} -ijpath {home / '.imagej'} -batch ")
    run = _run(shlex.split(command), timeout=180, env=env_of(home), cwd=tmp_path)
    print(run.output)
    assert "Denoise_Folder: 3 written, 0 skipped, 0 failed" in run.output


@needs_display
def test_lab_macro_without_the_commands_stops_with_a_sentence(home, tmp_path):
    """The README's old command (no -ijpath) hung on an invisible dialog; now one sentence."""
    install_into_fresh_home(home)
    three_tiffs(tmp_path / "raw")
    macro = home / ".imagej" / "macros" / "emdenoise" / "Denoise_Folder.ijm"
    argv = ["xvfb-run", "-a", "java", "-jar", str(IJ_JAR), "-batch", str(macro), f"in=[{tmp_path / 'raw'}]"]
    run = _run(argv, timeout=60, env=env_of(home), cwd=tmp_path)
    assert "Denoise_Folder: error: the EM commands are not installed in this ImageJ" in run.output
    assert run.seconds < 30


def test_a_batch_macro_naming_an_unknown_command_fails_within_seconds(home, tmp_path):
    install_into_fresh_home(home)
    macro = tmp_path / "typo.ijm"
    macro.write_text('print("starts");\nrun("EM Denoize", "model=default");\nprint("not reached");\n')
    argv = [sys.executable, "-m", "emdenoise", "fiji", "launch", "--headless", "--fiji", str(home / ".imagej"),
            "--batch", str(macro)]
    run = _run(argv, timeout=60, env=env_of(home), cwd=tmp_path)
    print(run.output)
    assert run.returncode == 1
    assert 'Unrecognized command: "EM Denoize"' in run.output and "the macro typo.ijm was aborted" in run.output
    assert "not reached" not in run.output.replace('print("not reached', "")
    assert run.seconds < 40


def test_launch_headless_batch_uses_the_embedded_engine_and_fails_loudly(home, tmp_path):
    """A server saved by a GUI session (IJ_Prefs.txt) is not used; a failed EM Denoise gives status 1."""
    install_into_fresh_home(home)
    prefs = home / ".imagej" / "IJ_Prefs.txt"
    prefs.write_text(".emdenoise.server=127.0.0.1:9\n")  # what EM Server Settings saves; nothing listens there
    three_tiffs(tmp_path / "raw")
    good = tmp_path / "good.ijm"
    good.write_text(f'open("{tmp_path}/raw/frame0.tif");\nrun("EM Denoise", "model=ede-kernel-tem-5");\n'
                    f'print("title " + getTitle());\n')
    argv = [sys.executable, "-m", "emdenoise", "fiji", "launch", "--headless", "--batch", str(good)]
    run = _run(argv, timeout=120, env=env_of(home), cwd=tmp_path)
    print(run.output)
    assert run.returncode == 0, run.output
    assert "title frame0_denoised-ede-kernel-tem-5.tif" in run.output and "embedded engine" in run.output
    assert prefs.read_text() == ".emdenoise.server=127.0.0.1:9\n"  # the user's setting is kept

    bad = tmp_path / "bad.ijm"
    bad.write_text(f'open("{tmp_path}/raw/frame0.tif");\nrun("EM Denoise", "model=no-such-model");\n'
                   'print("macro went on");\n')
    argv = [sys.executable, "-m", "emdenoise", "fiji", "launch", "--headless", "--batch", str(bad)]
    run = _run(argv, timeout=120, env=env_of(home), cwd=tmp_path)
    print(run.output)
    assert run.returncode == 1
    assert "EM Denoise: error: unknown model 'no-such-model'" in run.output
    assert "emdenoise: 1 EM command(s) failed in bad.ijm; the first: EM Denoise: unknown model" in run.output
