"""Start, follow and cancel training jobs (Noise2Atom, adapt); at most N run at once. No torch here.

The server and the embedded client share this class. Each job trains in its own worker
process (``python -m emdenoise.jobs.worker``), so the serving process never imports torch
(ARCHITECTURE.md, "Torch only for training"); a machine without the ``[train]`` extra is
told how to install it. Jobs are folders (:mod:`emdenoise.jobs.store`): a client may
disconnect and watch again later, and a job left unfinished by a previous server is
reported failed when this one starts.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from emdenoise.errors import InvalidInput, ResourceExhausted, UserError
from emdenoise.jobs.store import TERMINAL, Job, JobStore, follow, process_start

log = logging.getLogger(__name__)

TORCH_HINT = ("training needs PyTorch, which this emdenoise installation lacks; install it with "
              "pip install 'emdenoise[train]' on the machine that runs the server (or the embedded engine).")


class TorchMissing(UserError):
    """The ``[train]`` extra is not installed (gRPC: FAILED_PRECONDITION)."""


def torch_available() -> bool:
    """True when torch can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        return False


class TrainingJobs:
    """Training jobs (Noise2Atom or adapt) of one server or embedded client.

    Parameters
    ----------
    models_dir : path-like, optional
        Where finished models are registered (default: the user model directory).
    root : path-like, optional
        Jobs folder (default :func:`emdenoise.jobs.store.jobs_dir`).
    max_jobs : int
        Jobs training at the same time; more are refused with RESOURCE_EXHAUSTED.
    on_model : callable, optional
        Called with the model folder when a job finishes (the engine re-scans its models).
    python : str
        Interpreter that runs the worker.
    """

    def __init__(self, models_dir: str | Path | None = None, *, root: str | Path | None = None, max_jobs: int = 1,
                 on_model: Callable[[Path], None] | None = None, python: str = sys.executable,
                 torch_check: Callable[[], bool] = torch_available):
        from emdenoise.engine.repository import user_models_dir

        self.models_dir = Path(models_dir) if models_dir else user_models_dir()
        self.store = JobStore(root)
        self.max_jobs = max(1, int(max_jobs))
        self.on_model = on_model
        self.python = python
        self.torch_check = torch_check
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen] = {}
        self.recovered = self.store.recover(os.getpid())
        for job_id in self.recovered:
            log.warning("training job %s was left unfinished by a previous server; marked failed", job_id)

    # -- starting -------------------------------------------------------------------------
    def start(self, frames: Sequence[np.ndarray], model_id: str, *, gain: float | None = None,
              offset: float | None = None, preset: str = "cpu", settings: dict[str, Any] | None = None,
              series_name: str = "", recipe: str = "noise2atom") -> Job:
        """Check the frames, write the job and start its worker; returns the job.

        ``recipe`` is ``noise2atom`` (seed 004, ``train-series``) or ``adapt`` (issue 18:
        self-supervised training on the user's frames, :meth:`start_adapt`).

        Raises
        ------
        TorchMissing
            No torch here (FAILED_PRECONDITION with :data:`TORCH_HINT`).
        InvalidInput
            Bad model id, too few frames, frames of different sizes, not a STEM count series.
        ResourceExhausted
            ``max_jobs`` jobs are already training.
        """
        if recipe == "adapt":
            return self.start_adapt(frames, model_id, gain=gain, offset=offset, settings=settings,
                                    sources=[series_name] if series_name else [])
        if recipe not in ("noise2atom", ""):
            raise InvalidInput(f"unknown training recipe {recipe!r}; use noise2atom (train-series) or adapt.")
        from emdenoise.train.noise2atom import preset as make_preset
        from emdenoise.train.series_checks import check_series

        self._check_new_model(model_id)
        settings = dict(settings or {})
        try:
            config = replace(make_preset(preset), **settings)
        except TypeError as error:
            raise InvalidInput(f"unknown training setting ({error}); see emdenoise.train.noise2atom.Noise2AtomConfig.") from None
        if config.crop < 48 or config.crop % max(16, 2**config.depth):
            raise InvalidInput(f"crop {config.crop} must be a multiple of {max(16, 2**config.depth)} and at least 48 "
                               "(the critic halves it 4 times, the low-frequency filter is 33 px wide); pick e.g. 64.")
        series = check_series(frames, gain=gain, offset=offset)
        t, h, w = series.counts.shape
        if min(h, w) < config.crop:
            config = replace(config, crop=_largest_crop(min(h, w), config.depth))
        return self._create({
            "recipe": "noise2atom",
            "model_id": model_id,
            "models_dir": str(self.models_dir),
            "owner_pid": os.getpid(),
            "config": config.as_dict(),
            "preset": preset,
            "series": {"name": series_name, "frames": t, "shape": [h, w], "dose": series.dose,
                       "gain": series.gain, "offset": series.offset, "source": series.source,
                       "notes": list(series.notes), "held_out": list(series.held_out)},
        }, {"series.npy": series.counts})

    def start_adapt(self, frames: Sequence[np.ndarray], model_id: str, *, gain: float | None = None,
                    offset: float | None = None, settings: dict[str, Any] | None = None,
                    sources: Sequence[str] = ()) -> Job:
        """Start an ``adapt`` job (issue 18); checks run here, before any worker starts.

        ``settings`` holds :class:`emdenoise.adapt.train.AdaptConfig` fields plus ``method``
        (auto | pair | thinning | blindspot), ``from_model`` (an earlier adapted model) and
        ``modality`` (recorded on the card).
        """
        from emdenoise.adapt.data import prepare

        self._check_new_model(model_id)
        settings = dict(settings or {})
        method = str(settings.pop("method", "auto") or "auto")
        from_model = settings.pop("from_model", None) or None
        modality = str(settings.pop("modality", "any") or "any")
        unmasked_prior = False
        if from_model:
            from emdenoise.adapt.export import adaptable_weights
            from emdenoise.engine.repository import bundled_models_dir

            _, spec = adaptable_weights(from_model, [self.models_dir, bundled_models_dir()])
            unmasked_prior = spec["family"] == "vst-unet"
        data = prepare(frames, method=method, gain=gain, offset=offset, unmasked_prior=unmasked_prior)
        config = _adapt_config(settings)
        summary = data.summary()
        return self._create({
            "recipe": "adapt",
            "model_id": model_id,
            "models_dir": str(self.models_dir),
            "owner_pid": os.getpid(),
            "config": config,
            "from_model": from_model,
            "modality": modality,
            "sources": list(sources),
            "data": {**summary, "half_width": data.half_width, "shifts": summary["shifts"]},
        }, {"train.npy": data.train, "held_out.npy": data.held_out})

    def _check_new_model(self, model_id: str) -> None:
        from emdenoise.engine.cards import MODEL_ID_PATTERN

        if not self.torch_check():
            raise TorchMissing(TORCH_HINT)
        if not MODEL_ID_PATTERN.match(model_id or ""):
            raise InvalidInput(f"model name {model_id!r} must be a lowercase id like n2a-mysample-1 "
                               "(letters, digits, dashes; at least one dash); choose another --name.")
        if (self.models_dir / model_id).exists():
            raise InvalidInput(f"a model {model_id} already exists in {self.models_dir}; choose another --name or delete that folder.")

    def _create(self, request: dict[str, Any], arrays: dict[str, np.ndarray]) -> Job:
        """Write the job folder (request and arrays) and start its worker, within ``max_jobs``."""
        model_id = request["model_id"]
        with self._lock:
            self._reap()
            if self.active() >= self.max_jobs:
                raise ResourceExhausted(f"{self.max_jobs} training job(s) are already running on this server; "
                                        "wait for one to finish or cancel it.")
            if any(j.request.get("model_id") == model_id and j.state().get("state") not in TERMINAL
                   for j in self.store.jobs()):
                raise InvalidInput(f"a job training {model_id} is already running; choose another --name.")
            job = self.store.create(request)
            for name, array in arrays.items():
                np.save(job.file(name), array, allow_pickle=False)
            self._spawn(job)
        return job

    def _spawn(self, job: Job) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(job.request["config"].get("threads", 1)), PYTHONUNBUFFERED="1")
        job.set_state("queued", owner_pid=os.getpid(), owner_start=process_start(os.getpid()),
                      message="the training worker is starting")
        with open(job.file("worker.log"), "ab") as log_file:
            process = subprocess.Popen([self.python, "-m", "emdenoise.jobs.worker", str(job.folder)],
                                       stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        if job.state().get("state") == "queued":  # the worker records its pid itself once it runs
            job.set_state("queued", pid=process.pid)
        self._running[job.id] = process
        threading.Thread(target=self._wait, args=(job, process), name=f"train-{job.id}", daemon=True).start()

    def _wait(self, job: Job, process: subprocess.Popen) -> None:
        code = process.wait()
        state = job.state()
        if state.get("state") not in TERMINAL:  # killed, or crashed before it could say so
            job.set_state("failed", message=f"the training worker exited with code {code} before finishing; "
                          f"see {job.file('worker.log')}.")
        elif state.get("state") == "done" and self.on_model:
            try:
                self.on_model(Path(state["model_dir"]))
            except Exception:  # a registration hiccup must not kill the watcher
                log.exception("could not register %s", state.get("model_dir"))
        with self._lock:
            self._running.pop(job.id, None)

    def _reap(self) -> None:
        for job_id, process in list(self._running.items()):
            if process.poll() is not None and Job(self.store.root / job_id).state().get("state") in TERMINAL:
                self._running.pop(job_id, None)

    def active(self) -> int:
        """Jobs of this process still queued or running (a worker that is only exiting does not count)."""
        return sum(1 for job_id, p in list(self._running.items())
                   if p.poll() is None and Job(self.store.root / job_id).state().get("state") not in TERMINAL)

    # -- following ------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def watch(self, job_id: str, *, alive: Callable[[], bool] = lambda: True, poll: float = 0.2) -> Iterator[dict]:
        """Progress events of a job until it ends (see :func:`emdenoise.jobs.store.follow`)."""
        job = self.store.get(job_id)
        for event in follow(job, alive=alive, poll=poll):
            if event.get("kind") == "state" and event.get("state") == "done":
                self._wait_registered(job)
            yield event

    def _wait_registered(self, job: Job, timeout: float = 10.0) -> None:
        """Let ``on_model`` run before the client hears "done" (it may denoise at once)."""
        process = self._running.get(job.id)
        if process is None:
            return
        thread = next((t for t in threading.enumerate() if t.name == f"train-{job.id}"), None)
        if thread is not None:
            thread.join(timeout)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop; returns its state (terminal jobs are left as they are)."""
        job = self.store.get(job_id)
        state = job.state()
        if state.get("state") not in TERMINAL:
            job.request_cancel()
            state = job.set_state(state.get("state", "queued"), message="cancelling")
        return {"job_id": job.id, **state}

    def jobs(self) -> list[dict[str, Any]]:
        """Every job's id and state, oldest first."""
        return [{"job_id": j.id, **j.state()} for j in self.store.jobs()]

    def close(self, timeout: float = 10.0) -> None:
        """Cancel this process's jobs and wait for their workers (embedded client exit)."""
        for job_id, process in list(self._running.items()):
            if process.poll() is None:
                Job(self.store.root / job_id).request_cancel()
        for process in list(self._running.values()):
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()


def jobs_for_engine(engine, *, max_jobs: int = 1, models_dir: Path | None = None, **options) -> TrainingJobs:
    """Jobs whose models land in the user model directory, which ``engine`` then serves at once."""
    from emdenoise.engine.repository import user_models_dir

    models_dir = Path(models_dir) if models_dir else user_models_dir()
    repository = engine.repository

    def registered(_folder: Path) -> None:
        if all(Path(folder).resolve() != models_dir.resolve() for folder in repository.folders):
            repository.folders.append(models_dir)  # a trained model must be servable at once
        repository.refresh()

    return TrainingJobs(models_dir, max_jobs=max_jobs, on_model=registered, **options)


def _adapt_config(settings: dict[str, Any]) -> dict[str, Any]:
    """Checked :class:`emdenoise.adapt.train.AdaptConfig` fields, without importing torch."""
    from emdenoise.adapt.config import AdaptConfig

    return AdaptConfig.from_dict(settings).as_dict()


def _largest_crop(side: int, depth: int) -> int:
    """Largest crop <= ``side`` that the critic (4 modules) and the U-Net accept."""
    multiple = max(16, 2**depth)
    crop = side // multiple * multiple
    if crop < 48:  # the 33 x 33 low-frequency filter needs room, the critic 16 px per module
        raise InvalidInput(f"frames of {side} px are too small to train on; give frames of at least 48 px a side.")
    return crop

