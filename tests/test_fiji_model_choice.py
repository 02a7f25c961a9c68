"""EM Denoise's model chooser in Debian's real ImageJ (issue 21, item 2).

The dropdown shows modality, dose range and speed; the Macro Recorder writes the model
that ran (the resolved default, never ``model=default``) as a bare id that replays; a
dose outside the card's range is a warning in the Log on the worker path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.client import connect
from emdenoise.engine.repository import choose_default

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch, run_harness  # noqa: E402

pytestmark = [pytest.mark.imagej, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

#: Fast model with a narrow dose range (0.47-0.56 e/px): a 40 counts/px image is outside it.
NARROW = "ede-kernel-hrtem-3"


@pytest.fixture
def imagej(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    return root, imagej_env(home, temp), temp


def counts_image(path: Path) -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:48, :48]
    clean = 40 + 20 * np.sin(x / 3.0) * np.cos(y / 4.0)
    tifffile.imwrite(path, rng.poisson(clean).astype(np.uint16), imagej=True)


def recorded(output: str) -> str:
    return output.split("RECORDER>>>\n", 1)[1].split("<<<RECORDER", 1)[0]


def test_recorder_writes_the_resolved_default_and_the_chooser_shows_details(tmp_path, imagej):
    root, env, _ = imagej
    source = tmp_path / "frame.tif"
    counts_image(source)
    with connect(None) as client:
        resolved = choose_default(client.list_models(), "stem")
    run = run_harness("--open", str(source), "--record", "model=default;modality=stem;server=embedded;residual=true",
                      imagej_dir=root, env=env)
    print(run.output)
    line = recorded(run.output)
    assert f'run("EM Denoise", "model={resolved} modality=stem server=embedded ' in line, line
    assert line.rstrip().endswith('output=[32-bit float] residual");') and "model=default" not in line and " | " not in line
    choices = next(l for l in run.output.splitlines() if l.startswith("DIALOG-CHOICE Model"))
    assert "ede-kernel-stem-5 | STEM | any dose | fast" in choices
    assert f"{NARROW} | HRTEM | 0.47-0.56 e/px | fast" in choices
    assert f"RESULT-TITLE frame_denoised-{resolved}.tif" in run.output
    assert not run.dialogs, run.dialogs


def test_labelled_choice_records_a_bare_id_that_replays_and_the_dose_warns(tmp_path, imagej):
    root, env, _ = imagej
    source = tmp_path / "frame.tif"
    counts_image(source)
    run = run_harness("--open", str(source), "--record", f"model={NARROW};server=embedded",
                      imagej_dir=root, env=env)
    print(run.output)
    line = recorded(run.output).strip().splitlines()[-1]
    assert line.startswith(f'run("EM Denoise", "model={NARROW} modality=any '), line
    assert not run.dialogs, run.dialogs
    log = run.output.split("IMAGEJ-LOG>>>", 1)[1]
    assert re.search(rf"\nEM Denoise: warning: {NARROW}: estimated dose [3-4]\d(\.\d)? electrons/px is above the 0.558 counts/px", log), log
    # the recorded line replays in a batch macro (bare ids are the choices there) and warns in the Log
    macro = tmp_path / "replay.ijm"
    macro.write_text(f'open("{source}");\n{line}\nprint("title: " + getTitle());\n')
    replay = run_batch(macro, "", imagej_dir=root, env=env)
    print(replay.output)
    assert f"title: frame_denoised-{NARROW}.tif" in replay.output, replay.output
    warnings = [l for l in replay.output.splitlines() if l.startswith("EM Denoise: warning:")]
    assert any("is above the 0.558 counts/px" in w for w in warnings), warnings
