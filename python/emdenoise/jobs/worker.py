"""The training worker: ``python -m emdenoise.jobs.worker JOBDIR`` (needs the ``[train]`` extra).

Reads ``job.json`` and the arrays beside it, trains the job's recipe -- Noise2Atom
(:mod:`emdenoise.train.noise2atom`, seed 004) on ``series.npy``, or ``adapt``
(:mod:`emdenoise.adapt.train`, issue 18) on ``train.npy``/``held_out.npy`` -- appends
progress events, exports the network to ONNX and registers it in the models folder the
job names. It stops at its next
step when ``cancel`` appears, and fails the job when the process that started it dies
(its parent's pid changes), so a job is never left running unobserved.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from emdenoise.errors import UserError
from emdenoise.jobs.store import Job

#: Seconds between checks that the starting process is still alive.
PARENT_CHECK_SECONDS = 1.0


def run_job(job: Job) -> int:
    """Run one job to a terminal state; returns the exit code (0 done, 1 failed, 3 cancelled)."""
    request = job.request
    parent = int(request.get("owner_pid") or os.getppid())
    last_check = [0.0]
    parent_gone = [False]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last_check[0] > PARENT_CHECK_SECONDS:
            last_check[0] = now
            parent_gone[0] = os.getppid() != parent
        return parent_gone[0] or job.cancel_requested

    train = _train_adapt if request.get("recipe") == "adapt" else _train_noise2atom
    try:
        steps, seconds, folder, verdict = train(job, should_stop)
        if should_stop():
            raise _Cancelled()
    except _Cancelled:
        if parent_gone[0]:
            job.set_state("failed", message="the server that ran this job stopped before it finished; start the training again.")
            return 1
        job.set_state("cancelled", message=f"training of {request['model_id']} was cancelled; no model was registered.")
        return 3
    except UserError as error:
        job.set_state("failed", message=str(error))
        return 1
    except MemoryError:
        job.set_state("failed", message="the training worker ran out of memory; use a smaller preset or crop.")
        return 1
    except Exception as error:  # the job fails with a sentence; details in worker.log
        traceback.print_exc()
        job.set_state("failed", message=f"training failed unexpectedly ({type(error).__name__}: {error}); see {job.file('worker.log')}.")
        return 1
    job.set_state("done", model_id=request["model_id"], model_dir=str(folder), steps=steps,
                  seconds=round(seconds, 1),
                  message=f"model {request['model_id']} is ready ({steps} steps, {seconds:.0f} s){verdict}; "
                          f"denoise with --model {request['model_id']}.")
    return 0


class _Cancelled(Exception):
    pass


def _running(job: Job, message: str) -> None:
    job.set_state("running", pid=os.getpid(), started=time.time(), message=message)
    job.append_event({"kind": "state", "state": "running", "message": message})


def _train_noise2atom(job: Job, should_stop):
    """Noise2Atom (seed 004) on ``series.npy``; returns (steps, seconds, folder, verdict)."""
    from emdenoise.train.noise2atom import Cancelled, Noise2AtomConfig, train_noise2atom
    from emdenoise.train.series_export import export_series_model

    request = job.request
    config = Noise2AtomConfig.from_dict(request["config"])
    counts = np.load(job.file("series.npy"), allow_pickle=False)
    _running(job, f"training {request['model_id']} on {counts.shape[0]} frames")
    try:
        trained = train_noise2atom(counts, config, held_out=tuple(request["series"]["held_out"]),
                                   on_event=job.append_event, should_stop=should_stop)
    except Cancelled:
        raise _Cancelled() from None
    if should_stop():
        raise _Cancelled()
    job.append_event({"kind": "status", "message": "exporting the generator to ONNX"})
    folder = export_series_model(trained, config.as_dict(), request["series"], request["model_id"],
                                 request["models_dir"], work_dir=job.folder)
    return trained.steps, trained.seconds, folder, ""


def _train_adapt(job: Job, should_stop):
    """``adapt`` (issue 18) on ``train.npy``/``held_out.npy``; returns (steps, seconds, folder, verdict)."""
    from emdenoise.adapt.data import AdaptData
    from emdenoise.adapt.export import export_adapted, initial_state
    from emdenoise.adapt.train import AdaptConfig, train_adapt
    from emdenoise.engine.repository import bundled_models_dir

    request = job.request
    info = request["data"]
    data = AdaptData(method=info["method"], train=np.load(job.file("train.npy"), allow_pickle=False),
                     held_out=np.load(job.file("held_out.npy"), allow_pickle=False), gain=info["gain"],
                     offset=info["offset"], dose=info["dose_counts_per_px"], calibration=info["calibration"],
                     half_width=info["half_width"], shifts=[tuple(s) for s in info["shifts"]],
                     notes=tuple(info["notes"]), source_frames=info["frames"])
    config = AdaptConfig.from_dict(request["config"])
    init = None
    if request.get("from_model"):
        init, spec = initial_state(request["from_model"], [Path(request["models_dir"]), bundled_models_dir()])
        config.width, config.depth, config.family = spec["width"], spec["depth"], spec["family"]
    _running(job, f"adapting {request['model_id']} ({data.method}) on {len(data.train)} frame(s)")
    result = train_adapt(data, config, init_state=init, on_event=job.append_event, should_stop=should_stop)
    if should_stop():
        raise _Cancelled()
    job.append_event({"kind": "status", "message": "exporting the network to ONNX"})
    folder = export_adapted(result, data, config.as_dict(), request["model_id"], request["models_dir"],
                            work_dir=job.folder, sources=list(request.get("sources") or []),
                            modality=request.get("modality") or "any", started_from=request.get("from_model"))
    verdict = (f"; held-out error {result.error:.4g} vs classical-auto ({result.classical.label}) "
               f"{result.classical.error:.4g}: " + ("better" if result.beats_classical else
                                                     "NOT better, use classical-auto for these data"))
    return result.steps, result.seconds, folder, verdict


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m emdenoise.jobs.worker JOBDIR", file=sys.stderr)
        return 2
    job = Job(Path(argv[0]))
    try:
        return run_job(job)
    except Exception as error:  # even a broken job folder ends as a failed state
        traceback.print_exc()
        job.set_state("failed", message=f"the training worker could not run this job ({error}).")
        return 1


if __name__ == "__main__":
    sys.exit(main())
