"""``emdenoise bench fiji-folder`` (issue 20): a small run in real ImageJ prints both times and the ratio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import missing_tools  # noqa: E402

pytestmark = [pytest.mark.imagej, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]


def test_a_small_run_prints_both_times_the_ratio_and_identical_outputs(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "emdenoise", "bench", "fiji-folder", "--files", "2", "--size", "64",
         "--model", "classical-gaussian3", "--rounds", "1", "--per-job", "--work", str(tmp_path / "work"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    said = run.stdout
    assert "2 files of 64x64 uint16, model classical-gaussian3, 1 rounds" in said
    assert "emdenoise denoise FOLDER" in said and "Denoise_Folder.ijm (warm worker)" in said
    assert "ratio " in said and "(bar <= 1.2: " in said and "outputs identical: yes" in said
    result = json.loads(out.read_text())
    assert result["outputs_identical"] is True and set(result["times_s"]) == {"cli", "imagej", "imagej_per_job"}
    assert result["ratio"] == pytest.approx(result["times_s"]["imagej"][0] / result["times_s"]["cli"][0])
