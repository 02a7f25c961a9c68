"""EM Train On Data: the ``adapt`` job action, and the command in Debian's real ImageJ under Xvfb
(adapts on a pair, then EM Denoise uses the model; refusals)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emdenoise.errors import UserError  # noqa: E402
from emdenoise.fiji import bridge, train_job  # noqa: E402
from emdenoise.fiji.adapt_job import adapt_settings, run_adapt_job  # noqa: E402
from emdenoise.fiji.jobdir import JobDir  # noqa: E402
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch, run_harness  # noqa: E402
from test_adapt import specimen  # noqa: E402

needs_imagej = pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))
needs_torch = pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None, reason="needs [train]")

OPTIONS = "method=auto minutes=0.1 from=[] modality=stem server=embedded gain=1 offset=0"


# -- the job action, with a stand-in client -------------------------------------------------------
class _Training:
    def __init__(self, events):
        self.events, self.started, self.hooks_seen = events, None, []

    def start(self, frames, model_id, **options):
        self.started = {"frames": len(list(frames)), "model_id": model_id, **options}
        return {"job_id": "j1", "state": "queued", "model_id": model_id, "message": ""}

    def watch(self, job_id):
        for event in self.events:
            self.hooks_seen.append(len(train_job.CANCEL_HOOKS))
            yield event


class _Client:
    def __init__(self, training):
        self.training = training

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _RecordingJob(JobDir):
    def __init__(self, path):
        super().__init__(path)
        self.statuses = []

    def write_status(self, state, **values):
        self.statuses.append({"state": state, **values})
        super().write_status(state, **values)


def _job(tmp_path, monkeypatch, events, **request):
    tiff = tmp_path / "pair.tif"
    tifffile.imwrite(tiff, np.zeros((2, 96, 96), np.uint16))
    training = _Training(events)
    monkeypatch.setattr("emdenoise.client.connect", lambda server: _Client(training))
    job = _RecordingJob(tmp_path / "job")
    job.path.mkdir()
    values = {"action": "adapt", "input": str(tiff), "name": "adapt-x", "method": "auto", "minutes": "0.5",
              "from": "", "modality": "tem", "server": "embedded", "gain": "2", "offset": "100", "series": "pair.tif"}
    values.update(request)
    return job, training, values


def test_adapt_action_starts_an_adapt_job_and_mirrors_time_and_held_out_scores(tmp_path, monkeypatch):
    progress = {"kind": "progress", "step": 3, "total_steps": 100000, "losses": {"train": 2.0}, "elapsed": 4.2,
                "eta": 25.8, "held_out_mse": None, "classical_mse": None}
    evaluated = dict(progress, step=9, elapsed=12.6, eta=17.4, held_out_mse=0.61, classical_mse=0.5)
    done = {"kind": "state", "state": "done", "message": "model adapt-x is ready (20 steps, 30 s); held-out error ..."}
    job, training, request = _job(tmp_path, monkeypatch, [progress, evaluated, dict(progress, step=12), done],
                                  **{"from": "adapt-old"})
    assert "adapt" in bridge.ACTIONS
    result = bridge.ACTIONS["adapt"](job, request)
    assert result == {"model": "adapt-x", "job": "j1", "message": done["message"]}
    started = training.started
    assert started["recipe"] == "adapt" and started["frames"] == 2 and started["series_name"] == "pair.tif"
    assert (started["gain"], started["offset"]) == (2.0, 100.0)
    assert started["settings"] == {"max_seconds": 30.0, "method": "auto", "modality": "tem", "from_model": "adapt-old"}
    running = [s for s in job.statuses if s.get("done") is not None and s["total"]]
    assert [(s["done"], s["total"], s["unit"]) for s in running] == [(4, 30, "second"), (12, 30, "second"),
                                                                     (4, 30, "second")]
    assert running[0]["evaluation"] == "" and running[1]["evaluation"] == running[2]["evaluation"]
    assert running[1]["evaluation"] == "step 9: held-out error 0.61, classical-auto 0.5"
    assert training.hooks_seen == [1, 1, 1, 1] and train_job.CANCEL_HOOKS == []  # cancellable while it runs


def test_adapt_action_runs_noise2atom_as_train_on_series_and_reports_a_failed_job(tmp_path, monkeypatch):
    failed = {"kind": "state", "state": "failed", "message": "Noise2Atom needs 10 or more frames of one field."}
    job, training, request = _job(tmp_path, monkeypatch, [failed], method="noise2atom", gain="0")
    with pytest.raises(UserError, match="10 or more frames"):
        run_adapt_job(job, request)
    assert training.started["preset"] == "cpu" and "recipe" not in training.started
    assert training.started["settings"] == {"max_seconds": 30.0}
    assert (training.started["gain"], training.started["offset"]) == (None, None)  # gain 0: estimate both
    assert train_job.CANCEL_HOOKS == []


@pytest.mark.parametrize("request_, message", [
    ({"method": "noise2atom", "from": "adapt-old"}, "noise2atom always starts from scratch"),
    ({"minutes": "0"}, "Minutes must be more than 0"),
    ({"minutes": "ten"}, "minutes must be a number"),
    ({"method": "n2v"}, "unknown method 'n2v'"),
])
def test_adapt_settings_refuse_bad_requests_with_one_sentence(request_, message):
    with pytest.raises(UserError, match=message) as caught:
        adapt_settings({"method": "auto", "minutes": "1", **request_})
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)


# -- in ImageJ ----------------------------------------------------------------------------------
@pytest.mark.imagej
@needs_imagej
@needs_torch
def test_em_train_on_data_then_em_denoise_uses_the_new_model(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    models = tmp_path / "models"
    env = imagej_env(home, temp, {"EMDENOISE_MODELS": str(models), "EMDENOISE_JOBS": str(tmp_path / "jobs")})
    rng = np.random.default_rng(0)
    clean = specimen(96, seed=1)
    pair = np.stack([rng.poisson(clean) for _ in range(2)]).astype(np.uint16)
    source = tmp_path / "sample pair.tif"
    tifffile.imwrite(source, pair, imagej=True, metadata={"axes": "TYX"})
    result = tmp_path / "denoised.tif"
    macro = tmp_path / "adapt.ijm"
    macro.write_text(
        f"""
open("{source}");
run("EM Train On Data", "name=adapt-fiji-test {OPTIONS}");
run("EM Denoise", "model=adapt-fiji-test server=embedded gain=1 offset=0");
print("title: " + getTitle());
saveAs("Tiff", "{result}");
close("*");
print("end of macro");
"""
    )
    run = run_batch(macro, "", imagej_dir=root, env=env, timeout=150)
    out = run.output
    assert "EM Train On Data: sample pair.tif: model adapt-fiji-test is ready" in out, out
    assert "classical-auto" in out and "seconds" in out  # the verdict, and progress in seconds of the limit
    assert "title: sample pair_denoised-adapt-fiji-test.tif" in out, out
    assert tifffile.imread(result).shape == pair.shape
    card = json.loads((models / "adapt-fiji-test" / "card.json").read_text())
    assert card["training"]["method"] == "thinning" and card["modality"] == "stem"  # whole counts (gain 1)
    assert "end of macro" in out and "Exception" not in out and "\tat " not in out
    assert not list(temp.glob("emdenoise-job-*"))


@pytest.mark.imagej
@needs_imagej
def test_em_train_on_data_refuses_no_image_and_rgb_with_one_sentence(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    env = imagej_env(home, temp, {"EMDENOISE_MODELS": str(tmp_path / "models"),
                                  "EMDENOISE_JOBS": str(tmp_path / "jobs")})
    macro = tmp_path / "refuse.ijm"
    macro.write_text(
        f"""
run("EM Train On Data", "name=adapt-none {OPTIONS}");
print("--- rgb");
newImage("colour.tif", "RGB ramp", 96, 96, 1);
run("EM Train On Data", "name=adapt-rgb {OPTIONS}");
print("end of macro");
"""
    )
    run = run_batch(macro, "", imagej_dir=root, env=env, timeout=60)
    out = run.output
    none, rgb = out.split("--- rgb", 1)
    assert "EM Train On Data: error: no image is open; open the frame, pair or series to train on first." in none, out
    assert "EM Train On Data: error: 'colour.tif' is an RGB image;" in rgb and "Image > Type > 32-bit" in rgb, out
    assert "end of macro" in out and "Exception" not in out and "\tat " not in out
    assert not list(temp.glob("emdenoise-job-*")) and not (tmp_path / "models").exists()


@pytest.mark.imagej
@needs_imagej
@needs_torch
def test_em_train_on_data_from_the_menu_records_its_options(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    models = tmp_path / "models"
    env = imagej_env(home, temp, {"EMDENOISE_MODELS": str(models), "EMDENOISE_JOBS": str(tmp_path / "jobs")})
    rng = np.random.default_rng(2)
    frame = tmp_path / "one frame.tif"
    tifffile.imwrite(frame, rng.poisson(specimen(96, seed=3)).astype(np.uint16))
    run = run_harness("--open", str(frame), "--record", "name=adapt-recorded;minutes=0.05",
                      "--record-command", "EM Train On Data", imagej_dir=root, env=env, timeout=150)
    out = run.output
    assert ('run("EM Train On Data", "name=adapt-recorded method=auto minutes=0.05 from=[] modality=any '
            'server=embedded gain=0 offset=0");') in out, out
    assert run.dialogs and "EM Train On Data | model adapt-recorded is ready" in run.dialogs[-1], out
    card = json.loads((models / "adapt-recorded" / "card.json").read_text())
    assert card["training"]["method"] in ("thinning", "blindspot")  # one frame
    assert not list(temp.glob("emdenoise-job-*"))
