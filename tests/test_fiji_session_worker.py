"""The warm worker of an ImageJ session (issue 20, item 1): one per ImageJ process, reused by
every EM command, replaced when it dies, gone when ImageJ is.

Real processes throughout: the bridge as the macros start it, and Debian's real ImageJ
(``ij.jar -batch`` under Xvfb) for the tests named after ImageJ. No assertion is on time:
waits have generous deadlines and only fail when something never happens.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.fiji.jobdir import HEARTBEAT, read_keyvalues
from emdenoise.fiji.procs import ProcessRef, pid_alive
from emdenoise.fiji.session import PREFIX, session_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch  # noqa: E402
from imagej_helpers import poisson_stack as _stack, wait_until as _wait_for  # noqa: E402

NO_IMAGEJ = missing_tools()
MODEL = "ede-kernel-tem-5"
posix_only = pytest.mark.skipif(os.name != "posix", reason="kills processes by pid with POSIX signals")


def _status(job: Path) -> dict[str, str]:
    try:
        return read_keyvalues(job / "status.txt")
    except OSError:
        return {}


def _workers(temp: Path) -> list[Path]:
    return sorted(temp.glob(PREFIX + "*"))


class Macro:
    """A job folder with a request, and the macro's heartbeat while it polls."""

    def __init__(self, temp: Path, name: str, request: str):
        self.job = temp / f"emdenoise-job-{name}"
        self.job.mkdir(mode=0o700)
        (self.job / "request.txt").write_text(request)
        (self.job / HEARTBEAT).write_text("0")
        self._stop = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(0.3):
            try:
                (self.job / HEARTBEAT).write_text(str(time.time()))
            except OSError:
                return

    def stop_beating(self) -> None:
        self._stop.set()

    def final(self) -> dict[str, str]:
        return _wait_for(lambda: _status(self.job) if _status(self.job).get("state") in ("done", "error") else None,
                         120, f"no final status in {self.job}")


def _start(job: Path, env: dict | None = None) -> dict[str, str]:
    """``bridge start JOBDIR`` as the job runner runs it (its parent, this test, is the 'ImageJ')."""
    run = subprocess.run([sys.executable, "-m", "emdenoise.fiji.bridge", "start", str(job)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0 and run.stdout.startswith("started "), run.stdout + run.stderr
    lines = run.stdout.splitlines()
    fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    fields["pid"] = lines[0].split()[1] if len(lines[0].split()) > 1 else ""
    return fields


def _denoise_request(source: Path, job_name: str, temp: Path, model: str = "classical-gaussian3") -> str:
    return f"action=denoise\ninput={source}\noutput={temp / f'emdenoise-job-{job_name}' / 'out.tif'}\nmodel={model}\n"


@pytest.fixture
def temp(tmp_path):
    """ImageJ's temp folder; any worker a test left is stopped afterwards."""
    folder = tmp_path / "temp"
    folder.mkdir()
    yield folder
    for session in _workers(folder):
        beat = session / "worker-beat.txt"
        if beat.exists():
            process = ProcessRef.parse(read_keyvalues(beat).get("pid", ""))
            if process is not None:
                process.kill()


@posix_only
def test_jobs_of_one_imagej_go_to_one_worker_in_a_private_folder(tmp_path, temp):
    source = _stack(tmp_path / "in.tif")
    first = Macro(temp, "a", _denoise_request(source, "a", temp))
    started = _start(first.job)
    # The status says so at once, before the worker runs: the macro's status bar shows it.
    assert read_keyvalues(first.job / "status.txt").get("phase") == "starting worker"
    assert first.final()["state"] == "done"
    session = session_path(temp, ProcessRef.of(os.getpid()))
    assert _workers(temp) == [session] and stat.S_IMODE(session.stat().st_mode) == 0o700
    assert started["beat"] == str(session / "worker-beat.txt") and "note" not in started

    second = Macro(temp, "b", _denoise_request(source, "b", temp))
    again = _start(second.job)
    assert read_keyvalues(second.job / "status.txt").get("phase") in (None, "")  # warm: no "starting worker"
    done = second.final()
    assert done["state"] == "done" and done["worker_pid"] == _status(first.job)["worker_pid"] == again["pid"]
    assert started["pid"] == again["pid"]
    np.testing.assert_array_equal(tifffile.imread(first.job / "out.tif"), tifffile.imread(second.job / "out.tif"))
    first.stop_beating()
    second.stop_beating()


@posix_only
def test_a_killed_worker_is_reported_in_one_sentence_and_replaced(tmp_path, temp):
    source = _stack(tmp_path / "in.tif")
    first = Macro(temp, "a", _denoise_request(source, "a", temp))
    pid = int(_start(first.job)["pid"])
    assert first.final()["state"] == "done"
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not pid_alive(pid), 30, "the killed worker did not go")

    second = Macro(temp, "b", _denoise_request(source, "b", temp))
    again = _start(second.job)
    assert again["note"].startswith(f"the emdenoise worker (pid {pid}) had stopped (its process is gone")
    assert again["note"].endswith("; a new one was started.")
    assert int(again["pid"]) != pid and second.final()["state"] == "done"
    assert read_keyvalues(second.job / "status.txt")["worker_pid"] == again["pid"]


@posix_only
def test_a_job_queued_for_a_worker_that_died_is_run_by_its_successor(tmp_path, temp):
    """A macro queued its job itself (EM Denoise's way once the worker is known) just as the worker died."""
    from emdenoise.fiji.session import SessionDir

    source = _stack(tmp_path / "in.tif")
    first = Macro(temp, "a", _denoise_request(source, "a", temp))
    pid = int(_start(first.job)["pid"])
    assert first.final()["state"] == "done"
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not pid_alive(pid), 30, "the killed worker did not go")
    session = SessionDir(session_path(temp, ProcessRef.of(os.getpid())))
    waiting = session.path / "jobs" / "emdenoise-job-waiting"
    waiting.mkdir()
    (waiting / "request.txt").write_text(
        f"action=denoise\ninput={source}\noutput={waiting / 'out.tif'}\nmodel=classical-gaussian3\n")
    (waiting / HEARTBEAT).write_text(str(time.time()))
    session.enqueue(waiting)
    beating = Macro.__new__(Macro)  # the waiting macro keeps polling meanwhile
    beating.job, beating._stop = waiting, threading.Event()
    threading.Thread(target=beating._beat, daemon=True).start()

    second = Macro(temp, "b", _denoise_request(source, "b", temp))
    again = _start(second.job)
    assert again["note"].startswith(f"the emdenoise worker (pid {pid}) had stopped")
    assert second.final()["worker_pid"] == again["pid"] and beating.final()["worker_pid"] == again["pid"]
    for macro in (first, second, beating):
        macro.stop_beating()


@posix_only
def test_a_worker_idle_for_its_limit_stops_and_removes_its_folder(tmp_path, temp):
    source = _stack(tmp_path / "in.tif")
    job = Macro(temp, "a", _denoise_request(source, "a", temp))
    pid = int(_start(job.job, env={**os.environ, "EMDENOISE_FIJI_WORKER_IDLE": "1"})["pid"])
    assert job.final()["state"] == "done"
    _wait_for(lambda: not pid_alive(pid) and not _workers(temp), 60, "the idle worker did not stop")


@posix_only
def test_a_cancelled_job_stops_alone_and_the_worker_serves_the_next(tmp_path, temp):
    """The macro's heartbeat stops (Esc): that job is cancelled, its folder removed, the worker stays."""
    long = _stack(tmp_path / "long.tif", frames=400, size=64, seed=1)
    job = Macro(temp, "long", _denoise_request(long, "long", temp, model="classical-bm3d"))
    pid = _start(job.job)["pid"]
    _wait_for(lambda: int(_status(job.job).get("done") or 0) > 0, 120, "no frame finished")
    job.stop_beating()  # what Esc does to the job runner
    _wait_for(lambda: not job.job.exists(), 60, "the cancelled job's folder was not removed")
    short = Macro(temp, "short", _denoise_request(_stack(tmp_path / "in.tif"), "short", temp))
    assert _start(short.job)["pid"] == pid
    assert short.final()["worker_pid"] == pid
    short.stop_beating()


@posix_only
def test_a_worker_folder_open_to_others_is_not_used(tmp_path, temp):
    """Another user's (or a world-writable) folder at the worker's name: a worker of one job runs it."""
    session = session_path(temp, ProcessRef.of(os.getpid()))
    session.mkdir(mode=0o755)
    os.chmod(session, 0o755)
    job = Macro(temp, "a", _denoise_request(_stack(tmp_path / "in.tif"), "a", temp))
    started = _start(job.job)
    assert started["note"] == (f"no warm emdenoise worker ({session} is not a private folder of this user); "
                               "this job runs in a worker of its own.")
    assert "beat" not in started and job.final()["state"] == "done"
    assert list(session.iterdir()) == []  # nothing was written into it
    job.stop_beating()


# -- in real ImageJ -----------------------------------------------------------------------------
@pytest.fixture
def imagej(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    return root, imagej_env(home, temp), temp


def _worker_pids(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"worker pid (\d+)\)", output)]


@pytest.mark.imagej
@pytest.mark.skipif(NO_IMAGEJ is not None, reason=str(NO_IMAGEJ))
def test_two_em_denoise_runs_in_one_imagej_share_a_worker_that_exits_with_imagej(tmp_path, imagej):
    root, env, temp = imagej
    first, second = _stack(tmp_path / "a.tif", 3, 48, seed=2), _stack(tmp_path / "b.tif", 2, 40, seed=3)
    macro = tmp_path / "two.ijm"
    macro.write_text(
        f'open("{first}");\nrun("EM Denoise", "model={MODEL}");\nclose("*");\n'
        f'open("{second}");\nrun("EM Denoise", "model={MODEL}");\nprint("RESULT " + getTitle());\n'
    )
    run = run_batch(macro, "", imagej_dir=root, env=env, timeout=150)
    pids = _worker_pids(run.output)
    assert len(pids) == 2 and pids[0] == pids[1], run.output
    assert f"RESULT b_denoised-{MODEL}.tif" in run.output
    # ImageJ has exited: its worker notices and goes, taking its folder along.
    _wait_for(lambda: not pid_alive(pids[0]) and not _workers(temp), 60, "the worker outlived ImageJ")
    assert not list(temp.glob("emdenoise-job-*"))


@pytest.mark.imagej
@pytest.mark.skipif(NO_IMAGEJ is not None or os.name != "posix", reason=str(NO_IMAGEJ or "POSIX kill"))
def test_killing_the_worker_in_an_imagej_session_is_reported_and_the_next_command_restarts_it(tmp_path, imagej):
    root, env, temp = imagej
    source = _stack(tmp_path / "a.tif", 2, 40, seed=4)
    python = sys.executable
    macro = tmp_path / "kill.ijm"
    macro.write_text(
        'PYBOOT = "import os, sys; here = os.getcwd(); sys.path[:] = [p for p in sys.path if p and '
        "os.path.abspath(p) != here]; import runpy; runpy.run_module(sys.argv.pop(1), run_name='__main__', "
        'alter_sys=True)";\n'
        f'open("{source}");\nrun("EM Denoise", "model={MODEL}");\nclose("*");\n'
        f'said = exec("{python}", "-c", PYBOOT, "emdenoise.fiji.bridge", "worker", "--temp", getDirectory("temp"));\n'
        'pid = String.trim(replace(said, "pid=", ""));\n'
        'print("WORKER " + pid);\n'
        'exec("kill", "-9", pid);\n'
        f'open("{source}");\nrun("EM Denoise", "model={MODEL}");\nprint("RESULT " + getTitle());\n'
    )
    run = run_batch(macro, "", imagej_dir=root, env=env, timeout=150)
    out = run.output
    pids = _worker_pids(out)
    assert len(pids) == 2 and pids[0] != pids[1], out
    assert f"WORKER {pids[0]}" in out
    assert f"EM Denoise: the emdenoise worker (pid {pids[0]}) had stopped (its process is gone" in out, out
    assert "; a new one was started." in out and f"RESULT a_denoised-{MODEL}.tif" in out
    _wait_for(lambda: not pid_alive(pids[1]) and not _workers(temp), 60, "the new worker outlived ImageJ")
