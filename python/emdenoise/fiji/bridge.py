"""What the Fiji commands run: ``python -m emdenoise.fiji.bridge COMMAND ...``.

The macros in ``fiji-macros/`` reach emdenoise through this module (ARCHITECTURE.md,
"Fiji side": the commands go through the same client as the CLI, embedded engine when no
server is set, the server otherwise):

``models [--server HOST:PORT]``
    One line per denoising model, ``id<TAB>modality<TAB>default<TAB>backend``, for the
    dialog's model chooser; ``ERROR<TAB>sentence`` when the models cannot be listed.
``start JOBDIR``
    Starts a detached worker on the job folder's request and returns at once.
``work JOBDIR``
    The worker: runs the request (``action=denoise``: :func:`emdenoise.workflow.denoise_file`,
    exactly what ``emdenoise denoise`` runs per file), rewriting the status file as frames
    finish, and cancels itself when the macro's heartbeat stops.
``clean JOBDIR``
    Removes a job folder.

Only the standard library is imported at module level, so ``models``' and ``clean``'s
start-up stays short; the engine and client load inside the worker.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from emdenoise.fiji.jobdir import HEARTBEAT_TIMEOUT, LOG, JobDir, sweep_stale_jobs
from emdenoise.fiji.spawn import python_module_argv, spawn_detached

EMBEDDED = "embedded"
STATUS_INTERVAL = 0.2  # seconds between status rewrites while frames stream


def server_of(value: str | None) -> str | None:
    """``host:port``, or None for the embedded engine (empty or ``embedded``)."""
    value = (value or "").strip()
    return None if value.lower() in ("", EMBEDDED, "none") else value


# -- models ------------------------------------------------------------------------------
def list_denoisers(server: str | None, task: str = "denoise") -> list[dict]:
    """Cards of the models of ``task`` (denoisers by default) offered by ``server`` (None: embedded engine)."""
    from emdenoise.client import connect

    with connect(server) as client:
        cards = client.list_models()
    return sorted((c for c in cards if c.get("task") == task), key=lambda c: c["id"])


def cmd_models(args) -> int:
    from emdenoise.errors import UserError

    try:
        cards = list_denoisers(server_of(args.server), args.task)
    except UserError as error:
        print(f"ERROR\t{error}")
        return 2
    for card in cards:
        default = "1" if card.get("default") else "0"
        print(f"{card['id']}\t{card.get('modality', '')}\t{default}\t{card.get('backend', '')}")
    return 0


# -- start / clean -----------------------------------------------------------------------
def cmd_start(args) -> int:
    job = JobDir(args.jobdir)
    job.request()  # fail here, synchronously, when the macro wrote no request
    sweep_stale_jobs(job.path.parent)
    job.write_status("starting")
    pid = spawn_detached(
        python_module_argv("emdenoise.fiji.bridge", "work", str(job.path)),
        log_path=job.file(LOG),
        cwd=job.path,
    )
    print(f"started {pid}")
    return 0


def cmd_clean(args) -> int:
    JobDir(args.jobdir).remove()
    return 0


# -- the worker --------------------------------------------------------------------------
class _Progress:
    """Writes finished-frame counts to the status file, at most every ``STATUS_INTERVAL`` s."""

    def __init__(self, job: JobDir):
        self.job = job
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= STATUS_INTERVAL or done == total:
            self._last = now
            self.job.write_status("running", done=done, total=total)


def _optional_float(value: str | None) -> float | None:
    if value is None or value.strip() in ("", "0", "auto", "estimate"):
        return None
    return float(value)


def run_denoise(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """Denoise ``request['input']`` into ``request['output']`` as the CLI would."""
    from emdenoise.client import connect
    from emdenoise.engine.repository import choose_default
    from emdenoise.errors import UserError
    from emdenoise.workflow import denoise_file

    source = Path(request["input"])
    target = Path(request["output"])
    server = server_of(request.get("server"))
    tile = int(float(request.get("tile") or 0))
    modality = request.get("modality") or "any"
    model = request.get("model") or ""
    try:
        gain = _optional_float(request.get("gain"))
        offset = _optional_float(request.get("offset"))
    except ValueError:
        raise UserError("gain and offset must be numbers (0 = estimate from the image).") from None
    client = connect(server) if server else connect(None)
    with client:
        if model in ("", "default"):
            model = choose_default(client.list_models(), modality)
        job.write_status("running", done=0, total=0)
        denoise_file(
            client,
            source,
            target,
            model_id=model,
            modality=modality,
            gain=gain,
            offset=offset,
            overwrite=True,
            on_frame=_Progress(job),
            tile_size=tile or None,
        )
    if request.get("residual"):
        write_residual(source, target, Path(request["residual"]), model=model)
    return {"output": target, "model": model, "note": ""}


def write_residual(source: Path, denoised: Path, target: Path, *, model: str) -> Path:
    """Write ``raw - denoised`` frame by frame (float32), with the input's calibration.

    The residual shows what a model removed; structure in it (lattice fringes, edges) is
    signal the model suppressed or invented, which flat noise is not.
    """
    import numpy as np

    from emdenoise.io.tiff import iter_tiff_frames, read_tiff_metadata, write_tiff

    metadata = read_tiff_metadata(denoised)
    frames = (
        np.asarray(raw, np.float32) - np.asarray(clean, np.float32)
        for raw, clean in zip(iter_tiff_frames(source), iter_tiff_frames(denoised))
    )
    return write_tiff(target, frames, metadata, provenance={"residual": f"raw - denoised by {model}"}, overwrite=True)


def run_benchmark(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """``emdenoise bench series`` on the image; the table goes to ``request['output']`` (CSV).

    Classical baselines and models on a series of the same field: CSS (seed 004 eq. 10)
    and the paired-frame error for stacks, timings for every method.
    """
    import csv
    import json

    from emdenoise.errors import UserError

    try:
        from emdenoise.bench import series
    except ImportError:
        raise UserError("EM Benchmark needs 'emdenoise bench series', which this emdenoise lacks; update emdenoise.") from None
    out = job.path / "bench"
    argv = ["series", "--stack", request["input"], "--out", str(out)]
    for key in ("frames", "crop", "gain", "offset"):
        value = request.get(key, "").strip()
        if value and float(value) > 0:
            argv += [f"--{key}", str(int(float(value))) if key in ("frames", "crop") else value]
    baselines = request.get("baselines", "").strip()
    if baselines and baselines != "none" and "unfiltered" not in baselines.split(","):
        baselines = "unfiltered," + baselines  # the row every error is compared with
    if baselines:
        argv += ["--baselines", baselines]
    for model in filter(None, (m.strip() for m in request.get("models", "").split(","))):
        argv += ["--method", model]
    parser = argparse.ArgumentParser(prog="emdenoise bench")
    series.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    job.write_status("running", done=0, total=1)
    args.func(args)
    result = json.loads((out / "series.json").read_text(encoding="utf-8"))
    target = Path(request["output"])
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Method", "CSS", "Paired MSE (counts^2)", "x Unfiltered MSE", "s per megapixel", "Time ratio"])
        for row in result["methods"]:
            writer.writerow([
                row["name"], _number(row.get("css"), ".4f"), _number(row.get("paired_mse"), ".4g"),
                _number(row.get("paired_mse_vs_unfiltered"), ".3f"), _number(row.get("seconds_per_megapixel"), ".4g"),
                _number(row.get("time_ratio"), ".2f"),
            ])
    reference = result["methods"][0].get("time_reference", "") if result["methods"] else ""
    return {"output": target, "frames": result["frames"], "reference": reference}


def _number(value, spec: str) -> str:
    return "NaN" if value is None else format(value, spec)


def run_likelihood(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """EM Likelihood Map (seed 003, sec. 3): see :mod:`emdenoise.likelihood.fiji_job`."""
    from emdenoise.likelihood.fiji_job import run_likelihood_job

    return run_likelihood_job(job, request)


def run_train(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """EM Train On Series (Noise2Atom, seed 004): see :mod:`emdenoise.fiji.train_job`."""
    from emdenoise.fiji.train_job import run_train_job

    return run_train_job(job, request)


def run_adapt(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """EM Train On Data (``emdenoise adapt``, issue 18): see :mod:`emdenoise.fiji.adapt_job`."""
    from emdenoise.fiji.adapt_job import run_adapt_job

    return run_adapt_job(job, request)


ACTIONS = {"denoise": run_denoise, "benchmark": run_benchmark, "likelihood": run_likelihood, "train": run_train,
           "adapt": run_adapt}


def run_compress(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """EM Compress (seed 002, sec. 2): see :mod:`emdenoise.compress.fiji_job`."""
    from emdenoise.compress.fiji_job import run_compress_job

    return run_compress_job(job, request)


def run_decompress(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """EM Decompress (seed 002, sec. 2): see :mod:`emdenoise.compress.fiji_job`."""
    from emdenoise.compress.fiji_job import run_decompress_job

    return run_decompress_job(job, request)


ACTIONS.update(compress=run_compress, decompress=run_decompress)


def _peak_memory_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def _watch_heartbeat(job: JobDir, started: float, finished: threading.Event) -> None:
    """Cancel the job when the macro stops polling (Esc, ImageJ closed)."""
    while not finished.wait(0.5):
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
        # The job folder is removed after an error; the traceback stays next to it.
        kept = job.path.parent / "emdenoise-fiji-last-error.log"
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
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
