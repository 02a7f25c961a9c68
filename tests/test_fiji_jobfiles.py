"""The Fiji bridge's files (issue 22, item 4): private job folders, no fixed names, no links
followed, no code imported from the job folder, and a dead worker reported, not polled forever.

Real worker processes and real files; the killed-worker and folder-mode tests run the
installed macros in Debian's real ImageJ (skipped, with the reason, when it is missing).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tifffile

from emdenoise.fiji import bridge
from emdenoise.fiji.jobdir import HEARTBEAT, JobDir, read_keyvalues

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch  # noqa: E402
from imagej_helpers import poisson_stack as _stack, wait_until as _wait_for  # noqa: E402

NO_IMAGEJ = missing_tools()


def _status(job: Path) -> dict[str, str]:
    try:
        return read_keyvalues(job / "status.txt")
    except (FileNotFoundError, IsADirectoryError):
        return {}


def test_newjob_makes_a_fresh_folder_only_its_user_can_enter(tmp_path, capsys):
    assert bridge.main(["newjob", str(tmp_path)]) == 0
    assert bridge.main(["newjob", str(tmp_path)]) == 0
    first, second = (Path(line) for line in capsys.readouterr().out.split())
    assert first != second and first.parent == second.parent == tmp_path
    for folder in (first, second):
        assert folder.name.startswith("emdenoise-job-") and len(folder.name) > len("emdenoise-job-") + 6
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_newjob_in_a_missing_folder_is_one_sentence(tmp_path, capsys):
    assert bridge.main(["newjob", str(tmp_path / "missing")]) == 2
    out = capsys.readouterr().out
    assert out.startswith("ERROR\tcannot create a job folder in ") and out.count("\n") == 1


def test_the_error_log_of_an_unexpected_failure_follows_no_planted_link(tmp_path):
    """Another user's link at the old fixed log name made the worker overwrite its target."""
    shared = tmp_path / "shared-temp"
    shared.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (shared / "emdenoise-fiji-last-error.log").symlink_to(victim)
    job = shared / "emdenoise-job-test"
    job.mkdir()
    (job / "request.txt").write_text("action=denoise\n")  # no input: an unexpected KeyError in the handler
    (job / HEARTBEAT).write_text("0")
    worker = subprocess.run(
        [sys.executable, "-m", "emdenoise.fiji.bridge", "work", str(job)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert worker.returncode == 1, worker.stdout + worker.stderr
    assert victim.read_text() == "precious\n"
    status = read_keyvalues(job / "status.txt")
    assert status["state"] == "error" and "the details are in " in status["message"]
    kept = Path(status["message"].split("the details are in ")[1].rstrip("."))
    assert kept.parent == shared and not kept.is_symlink() and "KeyError" in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_the_worker_imports_no_code_from_the_job_folder(tmp_path):
    """A numpy.py beside the request must not run: the worker's cwd and sys.path exclude the job folder."""
    marker = tmp_path / "imported.txt"
    job = tmp_path / "emdenoise-job-test"
    job.mkdir(mode=0o700)
    (job / "numpy.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise ImportError('planted')\n")
    source = _stack(tmp_path / "in.tif")
    (job / "request.txt").write_text(
        f"action=denoise\ninput={source}\noutput={job / 'out.tif'}\nmodel=classical-gaussian3\n"
    )
    beating = threading.Event()

    def beat():  # the macro's heartbeat while it polls
        while not beating.wait(0.5):
            (job / HEARTBEAT).write_text(str(time.time()))

    (job / HEARTBEAT).write_text("0")
    threading.Thread(target=beat, daemon=True).start()
    try:
        started = subprocess.run(
            [sys.executable, "-m", "emdenoise.fiji.bridge", "start", str(job)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
        assert started.returncode == 0 and started.stdout.startswith("started "), started.stdout + started.stderr
        status = _wait_for(lambda: _status(job) if _status(job).get("state") in ("done", "error") else None,
                           120, "no final status")
    finally:
        beating.set()
    assert not marker.exists(), (job / "worker.log").read_text()
    assert status["state"] == "done", status
    assert tifffile.imread(job / "out.tif").shape == (2, 32, 32)


def test_a_worker_that_cannot_write_its_status_says_so_and_stops(tmp_path):
    job = tmp_path / "emdenoise-job-test"
    job.mkdir(mode=0o700)
    (job / "status.txt").mkdir()  # any status write fails
    source = _stack(tmp_path / "in.tif")
    (job / "request.txt").write_text(f"action=denoise\ninput={source}\noutput={job / 'out.tif'}\nmodel=classical-gaussian3\n")
    (job / HEARTBEAT).write_text("0")
    worker = subprocess.run(
        [sys.executable, "-m", "emdenoise.fiji.bridge", "work", str(job)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    said = worker.stdout + worker.stderr
    assert worker.returncode == 4, said
    assert "Traceback" not in said
    assert said.strip().splitlines()[-1].startswith(f"emdenoise cannot write the status of {job} (")
    beat = job / "worker-beat.txt"  # the worker beat while it lived; the macro sees the beat stop
    assert read_keyvalues(beat)["pid"].isdigit()


# -- in ImageJ --------------------------------------------------------------------------------
JOB_MACRO = """
args = split(getArgument(), "|");
status = runMacro(args[0], "Test|" + args[1] + "|" + args[2]);
print("STATUS " + replace(status, "\\n", " | "));
"""


def _worker_pids(job: Path) -> list[int]:
    """Process ids of workers running ``job``: the one its beat names (ImageJ's warm worker
    runs many jobs), and any whose command line names it (a worker of this job alone)."""
    pids = []
    try:
        named = (job / "worker-beat.txt").read_text().split("pid=", 1)[1].split()[0]
        pids.append(int(named.split(":")[0]))
    except (OSError, IndexError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"work" in argv and any(str(job).encode() in a for a in argv) and any(b"bridge" in a for a in argv):
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(NO_IMAGEJ is not None or not Path("/proc").is_dir(), reason=NO_IMAGEJ or "needs /proc")
def test_the_job_runner_reports_a_killed_worker_instead_of_polling_forever(tmp_path):
    """The kernel's OOM killer, as SIGKILL: the macro returns state=error with a sentence."""
    root, home, temp = installed_imagej(tmp_path)
    runner = root / "plugins" / "emdenoise" / "emdenoise-job.txt"
    macro = tmp_path / "run_job.ijm"
    macro.write_text(JOB_MACRO)
    job = temp / "emdenoise-job-killed"
    job.mkdir(mode=0o700)
    source = _stack(tmp_path / "in.tif", frames=40, size=128)
    (job / "request.txt").write_text(f"action=denoise\ninput={source}\noutput={job / 'out.tif'}\nmodel=classical-bm3d\n")
    result: dict = {}

    def imagej():
        try:
            result["run"] = run_batch(macro, f"{runner}|{sys.executable}|{job}{os.sep}", imagej_dir=root,
                                      env=imagej_env(home, temp), timeout=150)
        except AssertionError as error:
            result["error"] = error

    thread = threading.Thread(target=imagej)
    thread.start()
    _wait_for(lambda: _status(job).get("state") == "running", 120, "the worker did not start running")
    pids = _worker_pids(job)
    assert pids, "no worker process found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    thread.join()
    assert "error" not in result, result.get("error")
    output = result["run"].output
    assert "STATUS state=error | message=the emdenoise worker stopped before finishing" in output, output
    assert time.monotonic() - killed < 60


@pytest.mark.skipif(NO_IMAGEJ is not None, reason=NO_IMAGEJ or "")
def test_em_denoise_works_in_a_folder_only_its_user_can_enter(tmp_path):
    """EM Denoise's job folder and the micrograph it exports are private while the job runs."""
    root, home, temp = installed_imagej(tmp_path)
    source = _stack(tmp_path / "in.tif", frames=3, size=64)
    macro = tmp_path / "denoise.ijm"
    macro.write_text(
        f'open("{source}");\nrun("Add...", "value=1 stack");\n'  # modified: EM Denoise exports it
        'run("EM Denoise", "model=classical-gaussian3 modality=any server=embedded tile=0 gain=1 offset=0 '
        'output=[32-bit float]");\nprint("RESULT " + getTitle() + " " + nSlices);\n'
    )
    seen: dict[Path, tuple[int, set]] = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for folder in temp.glob("emdenoise-job-*"):
                try:
                    names = seen.get(folder, (0, set()))[1] | {p.name for p in folder.iterdir()}
                    seen[folder] = (stat.S_IMODE(folder.lstat().st_mode), names)
                except OSError:
                    pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_batch(macro, "", imagej_dir=root, env=imagej_env(home, temp), timeout=150)
    finally:
        done.set()
        watcher.join()
    assert "RESULT in_denoised-classical-gaussian3.tif 3" in run.output, run.output
    assert seen, "no job folder was seen"
    assert all(mode == 0o700 for mode, _ in seen.values()), seen
    assert any("in.tif" in names for _, names in seen.values()), seen  # the export lived inside it
    assert not list(temp.glob("emdenoise-job-*"))  # and the folder is gone afterwards


MACROS = Path(__file__).resolve().parents[1] / "fiji-macros" / "emdenoise"


def _macro_exec_argv(macro: Path, needle: str, values: dict[str, str]) -> list[str]:
    """The argv of the ``exec(...)`` call in ``macro`` that passes ``needle``, its variables filled in.

    String literals are taken as they are; a variable is looked up in ``values``, else in the
    macro's own ``NAME = "...";`` assignments, so the test runs exactly what ImageJ would.
    """
    import re

    text = macro.read_text()
    call = next(m.group(1) for m in re.finditer(r"exec\((.*?)\);", text) if f'"{needle}"' in m.group(1))
    assigned = dict(re.findall(r'^(?:var )?([A-Za-z_]\w*) = "(.*)";$', text, flags=re.M))
    argv = []
    for token in re.findall(r'"[^"]*"|[A-Za-z_]\w*', call):
        argv.append(token[1:-1] if token.startswith('"') else values.get(token, assigned.get(token)))
    assert None not in argv, (call, argv)
    return argv


def test_the_launcher_imports_nothing_from_imagejs_working_directory(tmp_path):
    """ImageJ's exec() runs the launcher where Fiji was started; planted modules there must not run.

    Before: the macros ran ``python -m emdenoise.fiji.bridge start JOBDIR``, which puts the
    working directory first on sys.path, so an ``argparse.py`` there ran in the launcher.
    """
    hostile = tmp_path / "where-fiji-was-started"
    hostile.mkdir()
    marker = tmp_path / "imported.txt"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\nraise ImportError('planted')\n"
    for name in ("argparse.py", "numpy.py", "runpy.py"):
        (hostile / name).write_text(plant)
    (hostile / "emdenoise").mkdir()
    (hostile / "emdenoise" / "__init__.py").write_text(plant)
    job = tmp_path / "emdenoise-job-test"
    job.mkdir(mode=0o700)
    source = _stack(tmp_path / "in.tif")
    (job / "request.txt").write_text(
        f"action=denoise\ninput={source}\noutput={job / 'out.tif'}\nmodel=classical-gaussian3\n"
    )
    argv = _macro_exec_argv(MACROS / "emdenoise-job.txt", "start",
                            {"python": sys.executable, "jobdir": str(job) + os.sep})
    beating = threading.Event()

    def beat():
        while not beating.wait(0.5):
            (job / HEARTBEAT).write_text(str(time.time()))

    (job / HEARTBEAT).write_text("0")
    threading.Thread(target=beat, daemon=True).start()
    try:
        started = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=hostile)
        assert started.returncode == 0 and started.stdout.startswith("started "), started.stdout + started.stderr
        status = _wait_for(lambda: _status(job) if _status(job).get("state") in ("done", "error") else None,
                           120, "no final status")
    finally:
        beating.set()
    assert not marker.exists(), marker.read_text()
    assert status["state"] == "done", status
    assert tifffile.imread(job / "out.tif").shape == (2, 32, 32)


def test_every_macro_starts_python_without_its_working_directory_on_the_path():
    """No macro runs ``python -m``; each passes the bootstrap the Python side defines."""
    from emdenoise.fiji.spawn import MACRO_BOOTSTRAP

    for macro in sorted(MACROS.iterdir()):
        if macro.suffix not in (".ijm", ".txt"):
            continue
        text = macro.read_text()
        assert '"-m"' not in text, f"{macro.name} still runs python -m from ImageJ's working directory"
        if "exec(python" in text:
            assert f'PYBOOT = "{MACRO_BOOTSTRAP}";' in text, macro.name
            assert all('"-c", PYBOOT,' in line for line in text.splitlines() if "exec(python" in line), macro.name


def test_the_launcher_leaves_the_working_directory_it_was_started_in(tmp_path):
    """launcher_main moves to a safe directory after making its path arguments absolute."""
    hostile = tmp_path / "where-fiji-was-started"
    hostile.mkdir()
    probe = ("import os, sys; from emdenoise.fiji import bridge; "
             "bridge.cmd_newjob = lambda args: print(os.getcwd(), args.temp) or 0; "
             "sys.exit(bridge.launcher_main(['newjob', 'temp']))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=hostile)
    assert run.returncode == 0, run.stderr
    cwd, temp = run.stdout.split()
    assert Path(cwd) != hostile and Path(cwd) == Path.home()
    assert Path(temp) == hostile / "temp"
