"""Run one job folder's request and write its final status: what every Fiji worker does per job.

Both kinds of worker use it: the warm worker of an ImageJ session
(:mod:`emdenoise.fiji.session_worker`, one thread per job) and the worker started for one
job alone (``bridge work JOBDIR``). The request's action is looked up in
:data:`emdenoise.fiji.job_actions.ACTIONS`; its handler is imported only then.

Only the standard library and :mod:`emdenoise.fiji.job_actions` are imported at module level.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from emdenoise.fiji.job_actions import ACTIONS
from emdenoise.fiji.jobdir import JobDir, private_log, temp_folder_of


def peak_memory_mib() -> float | None:
    """This process's peak resident memory in MiB (None on Windows)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def run_cancel_hooks(job: JobDir | None = None) -> None:
    """Cancel what outlives a job (a training job on a server) before it is abandoned.

    Parameters
    ----------
    job : JobDir, optional
        A job with hooks of its own (``job.cancel_hooks``: the warm worker's jobs); without
        it, the hooks of this process (``train_job.CANCEL_HOOKS``: a worker of one job).
        EM Train On Series and EM Train On Data register theirs through
        :func:`emdenoise.fiji.train_job.follow_job`.
    """
    hooks = getattr(job, "cancel_hooks", None)
    if hooks is None:
        hooks = getattr(sys.modules.get("emdenoise.fiji.train_job"), "CANCEL_HOOKS", ())
    for hook in list(hooks):
        try:
            hook()
        except Exception as error:  # the job is abandoned anyway
            print(f"could not cancel: {error}", flush=True)


def run_job(job: JobDir) -> int:
    """Run ``job``'s request and write its final status; a status that cannot be written is said in the log.

    Parameters
    ----------
    job : JobDir

    Returns
    -------
    int
        0 done, 1 unexpected failure, 2 a user error, 3 cancelled, 4 the status could not be written.
    """
    try:
        return _run_request(job)
    except OSError as error:
        if not job.path.exists():
            return 3
        # No status can be written: the macro sees the worker's beat stop and reports it.
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
        kept = private_log(temp_folder_of(job.path), "emdenoise-fiji-error-")
        kept.write_text(traceback.format_exc(), encoding="utf-8")
        job.write_status(
            "error",
            message=f"emdenoise failed unexpectedly ({type(error).__name__}: {error}); the details are in {kept}.",
        )
        return 1
    peak = peak_memory_mib()
    job.write_status(
        "done",
        seconds=f"{time.time() - started:.2f}",
        peak_memory_mib="" if peak is None else f"{peak:.1f}",
        worker_pid=os.getpid(),
        **result,
    )
    return 0
