"""EM Train On Series in Debian's real ImageJ under Xvfb: trains, then EM Denoise offers the model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile


sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch  # noqa: E402
from test_train_series import stem_series  # noqa: E402

pytest.importorskip("torch")
pytestmark = [pytest.mark.imagej, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]


def test_em_train_on_series_then_em_denoise_uses_the_new_model(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    models = tmp_path / "models"
    env = imagej_env(home, temp, {"EMDENOISE_MODELS": str(models), "EMDENOISE_JOBS": str(tmp_path / "jobs")})
    _, noisy = stem_series()
    series = tmp_path / "ptc series.tif"
    tifffile.imwrite(series, noisy.astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "short.tif", noisy[:4].astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    result = tmp_path / "denoised.tif"
    macro = tmp_path / "train.ijm"
    macro.write_text(
        f"""
open("{series}");
run("EM Train On Series", "name=n2a-fiji-test preset=tiny minutes=0 steps=0 server=embedded gain=1 offset=0");
run("EM Denoise", "model=n2a-fiji-test server=embedded gain=1 offset=0");
print("title: " + getTitle());
saveAs("Tiff", "{result}");
close("*");
print("--- short");
open("{tmp_path / 'short.tif'}");
run("EM Train On Series", "name=n2a-fiji-short preset=tiny server=embedded");
print("end of macro");
"""
    )
    run = run_batch(macro, "", imagej_dir=root, env=env, timeout=240)
    out = run.output
    assert "EM Train On Series: ptc series.tif: model n2a-fiji-test is ready" in out, out
    assert "steps" in out  # progress lines count training steps
    assert "title: ptc series_denoised-n2a-fiji-test.tif" in out, out
    assert tifffile.imread(result).shape == noisy.shape
    assert (models / "n2a-fiji-test" / "card.json").is_file()
    short = out.split("--- short", 1)[1]
    assert "EM Train On Series: error: 'short.tif' has 4 frame(s)" in short and "at least 10 frames" in short
    assert "end of macro" in out and "Exception" not in out and "\tat " not in out
    assert not list(temp.glob("emdenoise-job-*"))
