"""``emdenoise fiji install|uninstall`` and the bridge the macros call (no ImageJ needed)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.errors import UserError
from emdenoise.fiji import bridge
from emdenoise.fiji.install import CONFIG, install, uninstall
from emdenoise.fiji.jobdir import HEARTBEAT, JobDir, read_keyvalues, sweep_stale_jobs


#: Commands ARCHITECTURE.md names that already ship (others join as their features land).
ARCHITECTURE_COMMANDS = ("EM Benchmark", "EM Compress", "EM Decompress", "EM Denoise", "EM Likelihood Map", "EM Server Settings",
                         "EM Train On Data", "EM Train On Series")


def shipped_commands() -> list[str]:
    """Menu names of the macro commands in fiji-macros/emdenoise/ (what install must install)."""
    folder = Path(__file__).resolve().parents[1] / "fiji-macros" / "emdenoise"
    return sorted(path.stem.replace("_", " ") for path in folder.glob("*.ijm"))


def test_install_puts_commands_and_config_into_a_fiji_app(tmp_path):
    fiji = tmp_path / "Fiji.app"
    (fiji / "plugins").mkdir(parents=True)
    (fiji / "macros").mkdir()
    done = install(fiji, python="/opt/lab/python")
    assert done.command_names == shipped_commands()
    assert set(ARCHITECTURE_COMMANDS) <= set(done.command_names)
    assert (fiji / "plugins" / "emdenoise" / "EM_Denoise.ijm").is_file()
    # the shared job runner is not a menu command: .txt macros need an underscore for that
    assert (fiji / "plugins" / "emdenoise" / "emdenoise-job.txt").is_file()
    assert read_keyvalues(fiji / "plugins" / "emdenoise" / CONFIG)["python"] == "/opt/lab/python"
    assert (fiji / "macros" / "emdenoise" / "Denoise_Folder.ijm").is_file()
    removed = uninstall(fiji)
    assert set(removed) == {fiji / "plugins" / "emdenoise", fiji / "macros" / "emdenoise"}
    assert not (fiji / "plugins" / "emdenoise").exists()


def test_install_accepts_a_plugins_folder_and_records_this_python(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    done = install(plugins)
    assert read_keyvalues(done.config)["python"] == sys.executable
    assert done.examples == tmp_path / "macros" / "emdenoise"  # macros/ beside plugins/ is made, never skipped
    assert (done.examples / "Denoise_Folder.ijm").is_file()


def test_install_prepares_a_debian_user_folder_before_imagej_first_ran(tmp_path):
    from emdenoise.fiji.install import batch_commands

    done = install(tmp_path / ".imagej")
    assert (tmp_path / ".imagej" / "plugins" / "emdenoise" / "EM_Denoise.ijm").is_file()
    assert (tmp_path / ".imagej" / "macros" / "emdenoise" / "Denoise_Folder.ijm").is_file()
    commands = batch_commands(done)
    assert f"fiji launch --headless --fiji {tmp_path / '.imagej'} --batch " in commands["emdenoise"]
    assert f"-ijpath {tmp_path / '.imagej'} -batch " in commands["imagej"]


def test_install_refuses_a_folder_without_plugins(tmp_path):
    with pytest.raises(UserError, match="has no plugins folder"):
        install(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        install(tmp_path / "missing")


def test_uninstall_leaves_a_foreign_emdenoise_folder_alone(tmp_path):
    (tmp_path / "plugins" / "emdenoise").mkdir(parents=True)
    with pytest.raises(UserError, match="was not made by"):
        uninstall(tmp_path)
    assert (tmp_path / "plugins" / "emdenoise").is_dir()


def test_cli_install_and_uninstall(tmp_path):
    (tmp_path / "plugins").mkdir()
    run = [sys.executable, "-c", "import sys; from emdenoise.cli import main; sys.exit(main(sys.argv[1:]))"]
    out = subprocess.run([*run, "fiji", "install", "--fiji", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "installed " + ", ".join(shipped_commands()) in out.stdout
    out = subprocess.run([*run, "fiji", "uninstall", "--fiji", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert out.returncode == 2 and "is not a folder" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([*run, "fiji", "uninstall", "--fiji", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0 and "removed" in out.stdout


def test_bridge_models_lists_denoisers_or_one_error_line(capsys):
    assert bridge.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = [line.split("\t")[0] for line in lines]
    assert "ede-kernel-tem-5" in ids and all(len(line.split("\t")) == 5 for line in lines)
    assert "ede-kernel-hrtem-3\thrtem\t0\tonnx\tHRTEM | 0.47-0.56 e/px | fast" in lines  # the dialog's details
    assert bridge.main(["models", "--server", "127.0.0.1:9"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("ERROR\tcannot reach the emdenoise server at 127.0.0.1:9; start it with 'emdenoise serve --port 9'")


def _stack(path, frames=3):
    rng = np.random.default_rng(0)
    data = rng.poisson(40, (frames, 32, 32)).astype(np.uint16)
    tifffile.imwrite(path, data, imagej=True, resolution=(4.0, 4.0), metadata={"unit": "nm", "axes": "TYX"})
    return data


def test_worker_denoises_like_the_cli_and_writes_the_residual(tmp_path):
    from emdenoise.client import connect
    from emdenoise.workflow import denoise_file

    raw = _stack(tmp_path / "in.tif")
    job = JobDir(tmp_path / "job")
    job.path.mkdir()
    (job.path / "request.txt").write_text(
        f"action=denoise\ninput={tmp_path / 'in.tif'}\noutput={job.path / 'out.tif'}\n"
        f"model=ede-kernel-tem-5\nresidual={job.path / 'res.tif'}\n"
    )
    (job.path / HEARTBEAT).write_text("0")
    assert bridge.main(["work", str(job.path)]) == 0
    status = read_keyvalues(job.path / "status.txt")
    assert status["state"] == "done" and status["model"] == "ede-kernel-tem-5"
    with connect(None) as client:
        denoise_file(client, tmp_path / "in.tif", tmp_path / "cli.tif", model_id="ede-kernel-tem-5")
    ours = tifffile.imread(job.path / "out.tif")
    np.testing.assert_array_equal(ours, tifffile.imread(tmp_path / "cli.tif"))
    np.testing.assert_allclose(tifffile.imread(job.path / "res.tif"), raw.astype(np.float32) - ours, atol=1e-4)


def test_worker_runs_the_benchmark_action_into_a_csv(tmp_path):
    """EM Benchmark's request runs through the action registry, as EM_Benchmark.ijm sends it."""
    _stack(tmp_path / "in.tif", frames=4)
    job = JobDir(tmp_path / "job")
    job.path.mkdir()
    (job.path / "request.txt").write_text(
        f"action=benchmark\ninput={tmp_path / 'in.tif'}\noutput={job.path / 'table.csv'}\n"
        "frames=4\ncrop=32\ngain=1\nbaselines=gaussian_3x3\nmodels=\n"  # flat test data: gain given
    )
    (job.path / HEARTBEAT).write_text("0")
    assert bridge.main(["work", str(job.path)]) == 0
    status = read_keyvalues(job.path / "status.txt")
    assert status["state"] == "done" and status["frames"] == "4"
    rows = (job.path / "table.csv").read_text().splitlines()
    names = [r.split(",")[0] for r in rows[1:]]
    assert rows[0].startswith("Method,CSS,") and names[:2] == ["Unfiltered", "Gaussian"]
    assert len(names) == 3 and names[2].startswith("Gaussian (tuned: sigma ")  # issue 17: the tuned row too


def test_every_job_action_names_a_handler_that_exists():
    for name, action in bridge.ACTIONS.items():
        assert action.name == name and callable(action.load()), name


def test_worker_reports_an_unknown_model_as_one_sentence(tmp_path):
    _stack(tmp_path / "in.tif")
    job = JobDir(tmp_path / "job")
    job.path.mkdir()
    (job.path / "request.txt").write_text(f"action=denoise\ninput={tmp_path / 'in.tif'}\noutput={job.path / 'o.tif'}\nmodel=no-such-model\n")
    (job.path / HEARTBEAT).write_text("0")
    assert bridge.main(["work", str(job.path)]) == 2
    status = read_keyvalues(job.path / "status.txt")
    assert status["state"] == "error" and "no-such-model" in status["message"]
    assert "Traceback" not in status["message"]


def test_worker_cancels_itself_when_the_heartbeat_stops(tmp_path):
    """Esc aborts the macro; without its heartbeat the worker removes the job folder."""
    _stack(tmp_path / "in.tif", frames=2)
    job = JobDir(tmp_path / "job")
    job.path.mkdir()
    (job.path / "request.txt").write_text(f"action=denoise\ninput={tmp_path / 'in.tif'}\noutput={job.path / 'o.tif'}\n")
    # A job that would run 30 s, and a macro that never beats: cancelled within a second.
    worker = [sys.executable, "-c",
              "import sys, time; import emdenoise.fiji.bridge as b; b.HEARTBEAT_TIMEOUT = 0.0; "
              "b.ACTIONS['denoise'] = lambda job, request: time.sleep(30); sys.exit(b.main(sys.argv[1:]))",
              "work", str(job.path)]
    start = time.monotonic()
    process = subprocess.run(worker, capture_output=True, text=True, timeout=20)
    assert process.returncode == 3, process.stdout + process.stderr
    assert time.monotonic() - start < 10
    assert not job.path.exists()


def test_stale_job_folders_are_swept(tmp_path):
    old = tmp_path / "emdenoise-job-1"
    old.mkdir()
    (old / "status.txt").write_text("state=running\n")
    fresh = tmp_path / "emdenoise-job-2"
    fresh.mkdir()
    (fresh / HEARTBEAT).write_text("1")
    import os

    os.utime(old, (0, 0))
    assert sweep_stale_jobs(tmp_path, older_than=60) == [old]
    assert fresh.exists() and not old.exists()
