"""What the Fiji commands run: ``python -c MACRO_BOOTSTRAP emdenoise.fiji.bridge COMMAND ...``.

(:data:`emdenoise.fiji.spawn.MACRO_BOOTSTRAP` is ``-m`` without ImageJ's working directory
on ``sys.path``; run as a program, :func:`launcher_main` also leaves that directory.)

The macros in ``fiji-macros/`` reach emdenoise through this module (ARCHITECTURE.md,
"Fiji side": the commands go through the same client as the CLI, embedded engine when no
server is set, the server otherwise):

``models [--server HOST:PORT]``
    One line per denoising model, ``id<TAB>modality<TAB>default<TAB>backend<TAB>details``
    (details: modality, dose range and speed, :func:`emdenoise.fiji.model_labels.describe`),
    for the dialog's model chooser; ``ERROR<TAB>sentence`` when the models cannot be listed.
``newjob [TEMP]``
    Creates a private job folder in ImageJ's temp folder ``TEMP`` (fresh random name,
    mode 0700, :func:`emdenoise.fiji.jobdir.create_job_dir`) and prints its path.
``start JOBDIR``
    Starts a detached worker on the job folder's request and returns at once; its working
    directory is outside the job folder and it imports nothing from there.
``work JOBDIR``
    The worker: runs the request's action, found by name in
    :data:`emdenoise.fiji.job_actions.ACTIONS` (``action=denoise``:
    :func:`emdenoise.fiji.denoise_job.run_denoise`, exactly what ``emdenoise denoise`` runs
    per file), rewriting the status file as frames finish, and cancels itself when the
    macro's heartbeat stops.
``clean JOBDIR``
    Removes a job folder.

Only the standard library and small ``emdenoise.fiji`` modules are imported at module
level, so ``models``' and ``clean``'s start-up stays short; the engine, the client and the
action's handler load inside the worker. No handler imports this module back.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from emdenoise.fiji.clients import server_of
from emdenoise.fiji.job_actions import ACTIONS
from emdenoise.fiji.jobdir import (
    HEARTBEAT_TIMEOUT,
    LOG,
    WORKER_BEAT_INTERVAL,
    JobDir,
    create_job_dir,
    private_log,
    sweep_stale_jobs,
)
from emdenoise.fiji.spawn import python_module_argv, safe_cwd, spawn_detached


# -- models ------------------------------------------------------------------------------
def list_denoisers(server: str | None, task: str = "denoise") -> list[dict]:
    """Cards of the models of ``task`` (denoisers by default) offered by ``server`` (None: embedded engine)."""
    from emdenoise.client import connect

    with connect(server) as client:
        cards = client.list_models()
    return sorted((c for c in cards if c.get("task") == task), key=lambda c: c["id"])


def cmd_models(args) -> int:
    from emdenoise.errors import UserError
    from emdenoise.fiji.model_labels import describe

    try:
        cards = list_denoisers(server_of(args.server), args.task)
    except UserError as error:
        print(f"ERROR\t{error}")
        return 2
    for card in cards:
        default = "1" if card.get("default") else "0"
        print(f"{card['id']}\t{card.get('modality', '')}\t{default}\t{card.get('backend', '')}\t{describe(card)}")
    return 0


# -- newjob / start / clean ------------------------------------------------------------
def cmd_newjob(args) -> int:
    try:
        folder = create_job_dir(args.temp)
    except OSError as error:
        print(f"ERROR\tcannot create a job folder in {args.temp or 'the temp folder'} ({error.strerror}); check that it exists and is writable.")
        return 2
    print(folder)
    return 0


def cmd_start(args) -> int:
    job = JobDir(args.jobdir)
    job.request()  # fail here, synchronously, when the macro wrote no request
    sweep_stale_jobs(job.path.parent)
    job.write_status("starting")
    pid = spawn_detached(
        python_module_argv("emdenoise.fiji.bridge", "work", str(job.path)),
        log_path=job.file(LOG),
        cwd=safe_cwd(),
    )
    print(f"started {pid}")
    return 0


def cmd_clean(args) -> int:
    JobDir(args.jobdir).remove()
    return 0


# -- the worker --------------------------------------------------------------------------
def _peak_memory_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def _watch_heartbeat(job: JobDir, started: float, finished: threading.Event) -> None:
    """Beat for the macro; cancel the job when the macro stops polling (Esc, ImageJ closed)."""
    while True:
        try:
            job.beat()
        except OSError:  # the folder is gone (checked below) or full: the macro then sees the beat stop
            pass
        if finished.wait(WORKER_BEAT_INTERVAL):
            return
        if not job.path.exists():  # the macro cleaned up after Esc
            os._exit(3)
        age = job.heartbeat_age()
        if age is None:
            age = time.time() - started
        if age > HEARTBEAT_TIMEOUT:
            print(f"no heartbeat for {age:.1f} s: cancelling and removing {job.path}", flush=True)
            _run_cancel_hooks()
            job.remove()
            os._exit(3)  # ends running inference too; a server sees the stream cancelled


def _run_cancel_hooks() -> None:
    """Cancel what outlives this worker (a training job on a server) before it exits.

    EM Train On Series and EM Train On Data both register theirs in ``train_job.CANCEL_HOOKS``.
    """
    hooks = sys.modules.get("emdenoise.fiji.train_job")
    for hook in list(getattr(hooks, "CANCEL_HOOKS", ())):
        try:
            hook()
        except Exception as error:  # the worker exits anyway
            print(f"could not cancel: {error}", flush=True)


def cmd_work(args) -> int:
    job = JobDir(args.jobdir)
    finished = threading.Event()
    threading.Thread(target=_watch_heartbeat, args=(job, time.time(), finished), daemon=True).start()
    try:
        return _work(job)
    finally:
        finished.set()


def _work(job: JobDir) -> int:
    """Run the request and write its final status; a status that cannot be written is said in the log."""
    try:
        return _run_request(job)
    except OSError as error:
        if not job.path.exists():
            return 3
        # No status can be written: the macro sees this worker's beat stop and reports it.
        print(f"emdenoise cannot write the status of {job.path} ({error}); the job stops.", flush=True)
        return 4


def _run_request(job: JobDir) -> int:
    from emdenoise.errors import UserError

    started = time.time()
    try:
        request = job.request()
        action = request.get("action", "")
        if action not in ACTIONS:
            raise UserError(f"unknown job action {action!r}; update the emdenoise Fiji commands (emdenoise fiji install).")
        result = ACTIONS[action](job, request)
    except UserError as error:
        job.write_status("error", message=str(error))
        return 2
    except Exception as error:  # anything else still reaches the user as one sentence
        if not job.path.exists():  # cancelled: the macro removed the folder under us
            return 3
        # The job folder is removed after an error; the traceback stays next to it, in a new
        # file of a random name (never a fixed name another user could plant a link at).
        kept = private_log(job.path.parent, "emdenoise-fiji-error-")
        kept.write_text(traceback.format_exc(), encoding="utf-8")
        job.write_status(
            "error",
            message=f"emdenoise failed unexpectedly ({type(error).__name__}: {error}); the details are in {kept}.",
        )
        return 1
    peak = _peak_memory_mib()
    job.write_status(
        "done",
        seconds=f"{time.time() - started:.2f}",
        peak_memory_mib="" if peak is None else f"{peak:.1f}",
        **result,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emdenoise.fiji.bridge", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list denoising models for the dialog")
    p.add_argument("--server", default="")
    p.add_argument("--task", default="denoise", help="models of this task (encode: the autoencoders of EM Compress)")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("newjob", help="create a private job folder in TEMP and print its path")
    p.add_argument("temp", nargs="?", default="")
    p.set_defaults(func=cmd_newjob)
    for name, func, text in (
        ("start", cmd_start, "start a detached worker on JOBDIR"),
        ("work", cmd_work, "run JOBDIR's request (the worker)"),
        ("clean", cmd_clean, "remove JOBDIR"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("jobdir", type=Path)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one bridge command in this process (its working directory is left as it is).

    Parameters
    ----------
    argv : list of str, optional
        The command line after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def launcher_main(argv: list[str] | None = None) -> int:
    """:func:`main` as the program the macros start: it leaves ImageJ's working directory first.

    ImageJ's ``exec()`` cannot choose the directory a program starts in, so the launcher
    would otherwise run (and open relative names) wherever Fiji was started. Path
    arguments are made absolute, then the process moves to
    :func:`~emdenoise.fiji.spawn.safe_cwd`; the macros also keep that directory off
    ``sys.path`` (:data:`~emdenoise.fiji.spawn.MACRO_BOOTSTRAP`).

    Parameters
    ----------
    argv : list of str, optional
        The command line after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    args = build_parser().parse_args(argv)
    for name in ("jobdir", "temp"):
        value = getattr(args, name, None)
        if value:
            setattr(args, name, type(value)(os.path.abspath(value)))
    os.chdir(safe_cwd())
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(launcher_main())
