"""EM Compress / EM Decompress in Debian's real ImageJ under Xvfb: the same .emz and the same
restored stack as the command line, calibration kept, a damaged file refused in one sentence."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.client import EmbeddedClient
from emdenoise.compress.emz import iter_frames, read_header
from emdenoise.compress.files import decompress_file
from emdenoise.fiji import bridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_harness  # noqa: E402

pytestmark = [pytest.mark.imagej, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]


def test_bridge_lists_autoencoders_for_the_compress_dialog(capsys):
    assert bridge.main(["models", "--task", "encode"]) == 0
    ids = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    cards = {c["id"]: c for c in EmbeddedClient(device="cpu").list_models()}
    assert ids and all(cards[i]["task"] == "encode" for i in ids)


def test_em_compress_then_em_decompress_round_trips_a_stack(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    rng = np.random.default_rng(51)
    stack = rng.poisson(30, size=(2, 150, 210)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", stack, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TYX", "unit": "nm", "finterval": 0.25})
    emz, restored, bad = tmp_path / "movie.emz", tmp_path / "restored.tif", tmp_path / "bad.emz"
    macro = tmp_path / "run.ijm"
    macro.write_text(
        f'''
open("{tmp_path / 'movie.tif'}");
run("EM Compress", "model=ede-ae-d4 server=embedded bits=8 output=[{emz}]");
close("*");
run("EM Decompress", "input=[{emz}] server=embedded");
getPixelSize(unit, pw, ph);
print("RESULT " + getTitle() + " " + nSlices + " " + unit + " " + pw + " " + Stack.getFrameInterval());
saveAs("Tiff", "{restored}");
File.saveString("not an emz", "{bad}");
run("EM Decompress", "input=[{bad}] server=embedded");
print("WINDOWS " + nImages);  // a failed command opens nothing (as EM Denoise)
'''
    )
    run = run_harness("--gui", "--macro", str(macro), imagej_dir=root, env=imagej_env(home, temp), timeout=150)
    assert "RESULT movie_denoised-ede-ae-d4.tif 2 nm 0.5 0.25" in run.output, run.output
    header = read_header(emz)
    assert header.model_id == "ede-ae-d4" and header.frame_count == 2 and header.frame_shape == (150, 210)
    expected = decompress_file(EmbeddedClient(device="cpu"), emz, tmp_path / "cli.tif")
    np.testing.assert_array_equal(tifffile.imread(restored), tifffile.imread(expected))
    assert len(list(iter_frames(emz))) == 2
    dialogs = run.dialogs
    assert len(dialogs) == 1 and "EM Decompress" in dialogs[0] and "bad.emz is not an .emz file" in dialogs[0], run.output
    assert "WINDOWS 1" in run.output
    assert not list(temp.glob("emdenoise-job-*"))
