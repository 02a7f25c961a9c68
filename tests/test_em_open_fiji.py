"""EM Open and the model chosen from the file (issue 21, items 2 and 3), real files, real ImageJ.

A STEM DM4 (hyperspy 1.7.6's ``test_STEM_image.dm3``, GPL-3, rewritten as DM4 at test
time by :mod:`dm4_from_dm3`: its ``Microscope Info`` says STEM NANOPROBE) and a TEM Velox
EMD (``fei_example_tem_stack.emd``: BM-Ceta, an imaging detector) are read from
``$EMDENOISE_EM_EXAMPLES`` or ``tests/data/em`` (``tests/run.sh`` fetches them from the
hyperspy wheel); without them the tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dm4_from_dm3 import dm3_to_dm4  # noqa: E402
from imagej_helpers import IJ_JAR, _run, missing_tools  # noqa: E402

STEM_DM3 = "hyperspy/tests/io/dm3_2D_data/test_STEM_image.dm3"
TEM_EMD = "hyperspy/tests/io/emd_files/fei_example_tem_stack.emd"
STEM_DEFAULT, TEM_DEFAULT = "sim-vstunet32-stem-r2", "classical-auto"


def example(relative: str) -> Path:
    roots = [Path(os.environ["EMDENOISE_EM_EXAMPLES"])] if os.environ.get("EMDENOISE_EM_EXAMPLES") else []
    roots += [HERE / "data" / "em", HERE.parent / ".cache" / "em-examples"]
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    pytest.skip(f"example file {relative} is not installed (tests/run.sh fetches it; see the module docstring)")


@pytest.fixture
def raw(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    dm3_to_dm4(example(STEM_DM3), folder / "stem.dm4")
    shutil.copy(example(TEM_EMD), folder / "tem.emd")
    return folder


def test_modality_comes_from_the_files_metadata(raw):
    from emdenoise.io.modality import modality_with_reason
    from emdenoise.io.reader import read_image

    assert modality_with_reason(read_image(raw / "stem.dm4")[1]) == (
        "stem", "Microscope Info.Illumination Mode = STEM NANOPROBE")
    assert modality_with_reason(read_image(raw / "tem.emd")[1]) == ("tem", "detector BM-Ceta (ImagingDetector)")


def test_cli_denoise_picks_each_files_default(raw, tmp_path):
    out = subprocess.run([sys.executable, "-m", "emdenoise", "denoise", str(raw), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"stem_denoised-{STEM_DEFAULT}.tif", f"tem_denoised-{TEM_DEFAULT}.tif"]


@pytest.mark.imagej
@pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))
def test_em_open_and_denoise_folder_in_imagej(raw, tmp_path):
    """ImageJ's own -batch with the installed macros: EM Open keeps calibration and Info;
    Denoise_Folder.ijm takes the dm4 and emd and EM Denoise picks the stem/tem default."""
    from emdenoise.fiji.install import install

    root = tmp_path / ".imagej"
    install(root)
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1",
           "_JAVA_OPTIONS": f"-Duser.home={home} -Djava.io.tmpdir={home / 'tmp'}"}
    probe = tmp_path / "probe.ijm"
    probe.write_text(
        f'run("EM Open", "path=[{raw}/stem.dm4]");\ngetPixelSize(u, pw, ph);\n'
        'print("OPENED " + getTitle() + " " + d2s(pw, 6) + " " + u + " " + nSlices);\n'
        'print(getMetadata("Info"));\n'
        f'run("EM Open", "path=[{raw}/tem.emd]");\ngetPixelSize(u, pw, ph);\n'
        'print("OPENED " + getTitle() + " " + d2s(pw, 6) + " " + u + " " + nSlices);\n'
        f'run("EM Open", "path=[{raw}/missing.dm4]");\nprint("after missing");\n')
    argv = ["xvfb-run", "-a", "java", "-jar", str(IJ_JAR), "-ijpath", str(root), "-batch"]
    run = _run([*argv, str(probe)], timeout=180, env=env, cwd=tmp_path)
    print(run.output)
    assert "OPENED stem.dm4 0.248538 nm 1" in run.output
    assert "Modality: stem (from Microscope Info.Illumination Mode = STEM NANOPROBE)" in run.output
    assert "ImageList.TagGroup0.ImageTags.Microscope Info.Formatted Voltage = 200kV" in run.output
    assert "OPENED tem.emd 0.081729 \u00c5 2" in run.output or "OPENED tem.emd 0.081729 A 2" in run.output
    assert f"EM Open: error: the file {raw}/missing.dm4 does not exist" in run.output and "after missing" in run.output

    run = _run([*argv, str(root / "macros" / "emdenoise" / "Denoise_Folder.ijm"),
                f"in=[{raw}] out=[{tmp_path / 'out'}]"], timeout=240, env=env, cwd=tmp_path)
    print(run.output)
    assert "Denoise_Folder: 2 written, 0 skipped, 0 failed" in run.output
    stem = tmp_path / "out" / f"stem_denoised-{STEM_DEFAULT}.tif"
    assert stem.is_file() and (tmp_path / "out" / f"tem_denoised-{TEM_DEFAULT}.tif").is_file()
    from emdenoise.io.tiff import read_tiff_metadata

    meta = read_tiff_metadata(stem)
    assert meta.unit == "nm" and meta.pixel_size == pytest.approx(0.248538, rel=1e-5)
    assert tifffile.imread(stem).shape == (68, 68)


@pytest.mark.imagej
@pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))
def test_em_open_in_process_headless(raw, tmp_path):
    """'emdenoise fiji launch --headless' serves EM Open in-process; Denoise_Folder takes EM files."""
    from emdenoise.fiji.install import install

    done = install(tmp_path / ".imagej")
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1",
           "PYTHONUNBUFFERED": "1", "_JAVA_OPTIONS": f"-Duser.home={home} -Djava.io.tmpdir={home / 'tmp'}"}
    env.pop("DISPLAY", None)
    argv = [sys.executable, "-m", "emdenoise", "fiji", "launch", "--headless", "--fiji", str(done.root),
            "--batch", str(done.examples / "Denoise_Folder.ijm"), "--arg", f"in=[{raw}] out=[{tmp_path / 'out'}]"]
    run = _run(argv, timeout=240, env=env, cwd=tmp_path)
    print(run.output)
    assert run.returncode == 0 and "Denoise_Folder: 2 written, 0 skipped, 0 failed" in run.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"stem_denoised-{STEM_DEFAULT}.tif", f"tem_denoised-{TEM_DEFAULT}.tif"]
