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
    Hands the job folder to the warm worker of the ImageJ process that ran the command
    (:mod:`emdenoise.fiji.handover`: one long-lived worker per ImageJ session, started by
    the first command, models kept loaded) and returns at once. It prints ``started PID``,
    then ``beat=``/``log=`` (the worker's beat file and log, for the job runner) and, when
    it found the worker dead and started a new one, ``note=`` with one sentence saying so.
    Where no warm worker can be had (or ``$EMDENOISE_FIJI_WORKER`` is ``job``), it starts
    a detached worker for this job alone, as before.
``serve SESSIONDIR --owner PID``
    The warm worker (:mod:`emdenoise.fiji.session_worker`): runs the jobs handed to it until
    ImageJ process ``PID`` is gone or it was idle for ``--idle`` seconds.
``work JOBDIR``
    A worker of one job: runs the request's action, found by name in
    :data:`emdenoise.fiji.job_actions.ACTIONS` (``action=denoise``:
    :func:`emdenoise.fiji.denoise_job.run_denoise`, exactly what ``emdenoise denoise`` runs
    per file), rewriting the status file as frames finish, and cancels itself when the
    macro's heartbeat stops. The warm worker runs each job the same way
    (:func:`emdenoise.fiji.job_run.run_job`).
``worker``
    ``pid=PID`` of this ImageJ's warm worker, or ``pid=`` when none runs (``--temp``:
    ImageJ's temp folder).
``clean JOBDIR``
    Removes a job folder.

Only the standard library and :mod:`emdenoise.fiji.jobdir` are imported at module level
and each verb imports what it needs, so ``newjob``'s, ``start``'s and ``clean``'s start-up
stays short; the engine, the client and the action's handler load inside the worker. No
handler imports this module back.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Each verb imports the rest of what it needs itself: every EM command starts this module
# two or three times, so ``newjob`` and ``clean`` load no more than the job folder's code.
from emdenoise.fiji.jobdir import HEARTBEAT_TIMEOUT, JobDir, create_job_dir


def __getattr__(name: str):
    # ``ACTIONS`` stays reachable here (scripts and tests patch it) without loading the
    # registry in the verbs that do not run jobs.
    if name == "ACTIONS":
        from emdenoise.fiji.job_actions import ACTIONS

        return ACTIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- models ------------------------------------------------------------------------------
def list_denoisers(server: str | None, task: str = "denoise") -> list[dict]:
    """Cards of the models of ``task`` (denoisers by default) offered by ``server`` (None: embedded engine)."""
    from emdenoise.client import connect

    with connect(server) as client:
        cards = client.list_models()
    return sorted((c for c in cards if c.get("task") == task), key=lambda c: c["id"])


def cmd_models(args) -> int:
    from emdenoise.errors import UserError
    from emdenoise.fiji.clients import server_of
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
    from emdenoise.fiji.handover import hand_over
    from emdenoise.fiji.jobdir import sweep_stale_jobs, temp_folder_of
    from emdenoise.fiji.session import BEAT, LOG, SessionUnavailable

    job = JobDir(args.jobdir)
    job.request()  # fail here, synchronously, when the macro wrote no request
    sweep_stale_jobs(temp_folder_of(job.path))
    note = ""
    if os.environ.get("EMDENOISE_FIJI_WORKER", "").strip().lower() != "job":
        try:
            # The status is written before the job is queued: the worker may take it at once.
            handoff = hand_over(job.path, before_queue=lambda started: job.write_status(
                "starting", phase="starting worker" if started else ""))
        except SessionUnavailable as why:
            note = f"no warm emdenoise worker ({why}); this job runs in a worker of its own."
        else:
            state = handoff.session.state()
            print(f"started {state.process.pid if state.process else ''}".rstrip())
            print(f"beat={handoff.session.file(BEAT)}")
            print(f"log={handoff.session.file(LOG)}")
            if handoff.note:
                print(f"note={handoff.note}")
            return 0
    job.write_status("starting", phase="starting worker")
    pid = start_job_worker(job)
    print(f"started {pid}")
    if note:
        print(f"note={note}")
    return 0


def start_job_worker(job: JobDir) -> int:
    """Start a detached worker for ``job`` alone (``bridge work JOBDIR``); return its pid."""
    from emdenoise.fiji.jobdir import LOG
    from emdenoise.fiji.spawn import python_module_argv, safe_cwd, spawn_detached

    return spawn_detached(
        python_module_argv("emdenoise.fiji.bridge", "work", str(job.path)),
        log_path=job.file(LOG),
        cwd=safe_cwd(),
    )


def cmd_serve(args) -> int:
    from emdenoise.fiji.session import idle_timeout
    from emdenoise.fiji.session_worker import serve

    return serve(args.session, args.owner, idle_timeout() if args.idle is None else args.idle)


def cmd_worker(args) -> int:
    import tempfile

    from emdenoise.fiji.handover import imagej_process
    from emdenoise.fiji.session import SessionDir, session_path

    temp = args.temp or tempfile.gettempdir()
    state = SessionDir(session_path(temp, imagej_process())).state()
    alive = state.alive and state.process is not None and state.process.alive()
    print(f"pid={state.process.pid if alive else ''}")
    return 0


def cmd_clean(args) -> int:
    JobDir(args.jobdir).remove()
    return 0


# -- a worker of one job -------------------------------------------------------------------
def _watch_heartbeat(job: JobDir, started: float, finished) -> None:
    """Beat for the macro; cancel the job when the macro stops polling (Esc, ImageJ closed)."""
    import time

    from emdenoise.fiji.job_run import run_cancel_hooks
    from emdenoise.fiji.jobdir import WORKER_BEAT_INTERVAL

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
            run_cancel_hooks()
            job.remove()
            os._exit(3)  # ends running inference too; a server sees the stream cancelled


def cmd_work(args) -> int:
    import threading
    import time

    from emdenoise.fiji.job_run import run_job

    job = JobDir(args.jobdir)
    finished = threading.Event()
    threading.Thread(target=_watch_heartbeat, args=(job, time.time(), finished), daemon=True).start()
    try:
        return run_job(job)
    finally:
        finished.set()


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
        ("start", cmd_start, "hand JOBDIR to this ImageJ's warm worker (started when none runs)"),
        ("work", cmd_work, "run JOBDIR's request (a worker of one job)"),
        ("clean", cmd_clean, "remove JOBDIR"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("jobdir", type=Path)
        p.set_defaults(func=func)
    p = sub.add_parser("serve", help="the warm worker of an ImageJ session (started by 'start')")
    p.add_argument("session", type=Path)
    p.add_argument("--owner", required=True, help="the ImageJ process: PID or PID:START")
    p.add_argument("--idle", type=float, help="seconds without a job before it stops (default: $EMDENOISE_FIJI_WORKER_IDLE, else 900)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("worker", help="print pid= of this ImageJ's warm worker (empty when none runs)")
    p.add_argument("--temp", default="", help="ImageJ's temp folder")
    p.set_defaults(func=cmd_worker)
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
    for name in ("jobdir", "temp", "session"):
        value = getattr(args, name, None)
        if value:
            setattr(args, name, type(value)(os.path.abspath(value)))
    from emdenoise.fiji.spawn import safe_cwd

    os.chdir(safe_cwd())
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(launcher_main())
