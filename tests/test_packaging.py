"""A non-editable install carries everything the runtime needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_stubs_models_and_sample(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("emdenoise-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "emdenoise/v1/denoiser_pb2.py",
        "emdenoise/v1/denoiser_pb2_grpc.py",
        "emdenoise/data/sample_srtio3_haadf.tif",
        "emdenoise/data/NOTICE_sample.txt",
        "emdenoise/_bundled_models/ede-kernel-stem-5/card.json",
        "emdenoise/_bundled_models/ede-kernel-stem-5/model.onnx",
        "emdenoise/_bundled_models/retired.json",
        "emdenoise/_fiji_macros/emdenoise/EM_Denoise.ijm",
        "emdenoise/_fiji_macros/emdenoise/emdenoise-job.txt",
        "emdenoise/_fiji_macros/examples/Denoise_Folder.ijm",
    ):
        assert required in names, required
    shipped = [n for n in names if n.startswith("emdenoise/_bundled_models/") and n.endswith("card.json")]
    in_repo = list((REPO / "export").glob("*/card.json"))
    assert len(shipped) == len(in_repo)


def test_every_source_folder_is_a_package():
    """A folder without __init__.py would silently drop out of the wheel."""
    root = REPO / "python" / "emdenoise"
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(REPO)} lacks __init__.py"
