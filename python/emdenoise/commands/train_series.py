"""``emdenoise train-series STACK --name ID``: Noise2Atom on your own STEM series (seed 004).

Streams the series to the server (or, with no ``--server``, to a worker process of this
command), shows live progress (step, losses, CSS and paired-frame error on the held-out
consecutive frames, ETA) and, when training ends, the new model id to use with ``denoise
--model``. Ctrl-C cancels the job; ``--detach`` returns after the start (server only: the job
keeps running, ``--watch JOB`` follows it again, ``--cancel JOB`` stops it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from emdenoise.cli_types import key_value_settings
from emdenoise.commands.denoise import add_connection_arguments, client_from_args
from emdenoise.errors import UserError

PRESET_NAMES = ("cpu", "paper", "tiny")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-series",
        help="train a Noise2Atom denoiser on your own STEM series (seed 004)",
        description="Unsupervised Noise2Atom training (seed 004): maps the noisy frames of your HAADF/ADF series to "
        "simulated Gaussian atom peaks, then registers the generator as a model in the user model directory "
        "($EMDENOISE_MODELS). Needs the [train] extra where the training runs.",
    )
    p.add_argument("stack", nargs="?", type=Path, metavar="STACK", help="TIFF/EM series of one field, 10 frames or more")
    p.add_argument("--name", metavar="ID", help="id of the new model, e.g. n2a-ptc-run3")
    p.add_argument("--preset", default="cpu", choices=PRESET_NAMES,
                   help="network size and schedule: cpu (minutes on a CPU, default), paper (seed 004's), tiny (tests)")
    p.add_argument("--steps", type=int, help="generator steps (default: the preset's)")
    p.add_argument("--minutes", type=float, help="stop training after this many minutes and keep the best so far")
    p.add_argument("--lr", type=float, help="RMSProp learning rate (default: the preset's; seed 004 uses 5e-5)")
    p.add_argument("--crop", type=int, help="training crop side, multiple of 16, at least 48 (default: the preset's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other Noise2AtomConfig field, e.g. --set width=16 (repeatable)")
    p.add_argument("--gain", type=float, help="detector reading per electron (default: estimated from the series)")
    p.add_argument("--offset", type=float, help="detector reading at zero electrons (default: estimated)")
    p.add_argument("--server-path", action="store_true",
                   help="STACK is a path on the server's disk: the server reads it, nothing is uploaded")
    p.add_argument("--detach", action="store_true", help="print the job id and return (server only)")
    p.add_argument("--watch", metavar="JOB", help="follow a running job")
    p.add_argument("--cancel", metavar="JOB", help="cancel a job")
    p.add_argument("--list", action="store_true", help="list training jobs and their states")
    add_connection_arguments(p)
    p.set_defaults(func=run)


def _settings(args) -> dict:
    settings = key_value_settings(args.set, "--set", "width=16")
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.minutes is not None:
        settings["max_seconds"] = float(args.minutes) * 60
    if args.lr is not None:
        settings["lr"] = args.lr
    if args.crop is not None:
        settings["crop"] = args.crop
    return settings


def _read_series(path: Path) -> tuple[list, str]:
    """The frames of the series file and its name (see :func:`emdenoise.train.series_checks.read_series_file`)."""
    from emdenoise.train.series_checks import read_series_file

    return read_series_file(path), path.name


def format_event(event: dict) -> str | None:
    """One progress line for an event of a Noise2Atom or adapt job (None: nothing to print)."""
    kind = event.get("kind")
    if kind == "progress" and "train" in (event.get("losses") or {}):
        return _adapt_line(event)
    if kind == "progress":
        losses = event.get("losses") or {}
        line = (f"step {event['step']}/{event['total_steps']}  critic {losses.get('critic', 0):.3g}  "
                f"gan {losses.get('gan', 0):.3g}  cycle {losses.get('cycle', 0):.3g}  lfc {losses.get('lfc', 0):.3g}")
        if event.get("css") is not None:
            line += f"  | held-out CSS {event['css']:.4f}  paired MSE {event['paired_mse']:.4g}"
            if event.get("thinned_mse") is not None:
                line += f"  thinned MSE {event['thinned_mse']:.4g}"
        return line + f"  | {event.get('elapsed', 0):.0f} s, ETA {event.get('eta', 0):.0f} s"
    if kind in ("status", "state") and event.get("message"):
        return f"{event.get('state') or kind}: {event['message']}"
    return None


def _adapt_line(event: dict) -> str:
    """Progress of an adapt job: training loss, and after an evaluation both held-out errors."""
    line = f"step {event['step']}  train loss {event['losses']['train']:.4g}"
    if event.get("held_out_mse") is not None and event.get("classical_mse"):
        line += (f"  | held-out error {event['held_out_mse']:.4g}, classical-auto {event['classical_mse']:.4g} "
                 f"({event['held_out_mse'] / event['classical_mse']:.3f}x)")
    return line + f"  | {event.get('elapsed', 0):.0f} s, {event.get('eta', 0):.0f} s left"


def follow(training, job_id: str, *, out=None) -> int:
    """Print a job's events until it ends (to ``out``, default the current stdout); Ctrl-C cancels it.
    Returns the exit code."""
    out = out if out is not None else sys.stdout
    final = {}
    last_print = 0.0
    try:
        for event in training.watch(job_id):
            if event.get("kind") == "state" and event.get("state") in ("done", "failed", "cancelled"):
                final = event
                continue
            line = format_event(event)
            evaluated = event.get("css") is not None or event.get("held_out_mse") is not None
            if line and (evaluated or event.get("kind") != "progress" or time.monotonic() - last_print > 2):
                print(line, file=out, flush=True)
                last_print = time.monotonic()
    except KeyboardInterrupt:
        training.cancel(job_id)
        print(f"cancelling job {job_id}", file=sys.stderr, flush=True)
        for event in training.watch(job_id):
            final = event
        print(f"{final.get('state', 'cancelled')}: {final.get('message', '')}", file=sys.stderr)
        return 130
    print(f"{final.get('state', '?')}: {final.get('message', '')}", file=out, flush=True)
    return 0 if final.get("state") == "done" else 1


def run(args) -> int:
    with client_from_args(args) as client:
        training = client.training
        if args.list:
            for job in training.jobs():
                print(f"{job['job_id']}\t{job['state']}\t{job['model_id']}\t{job['message']}")
            return 0
        if args.cancel:
            job = training.cancel(args.cancel)
            print(f"{job['job_id']}: {job['state']} ({job['message']})")
            return 0
        if args.watch:
            return follow(training, args.watch)
        if args.stack is None or not args.name:
            raise UserError("give the series and a name for the model: emdenoise train-series STACK --name ID.")
        settings = _settings(args)
        if args.detach and not args.server:
            raise UserError("--detach needs --server: an embedded job ends with this command.")
        if args.server_path:
            if not args.server:
                raise UserError("--server-path needs --server: without a server the series is read here anyway.")
            frames, name, path = None, args.stack.name, str(args.stack)
        else:
            (frames, name), path = _read_series(args.stack), ""
        job = training.start(frames, args.name, gain=args.gain, offset=args.offset, preset=args.preset,
                             settings=settings, series_name=name, server_path=path)
        where = f"server {args.server}" if args.server else "a local worker"
        print(f"job {job['job_id']}: training {args.name} on {where} ({job['message']})", flush=True)
        if args.detach:
            print(f"follow it with: emdenoise train-series --watch {job['job_id']} --server {args.server}")
            return 0
        return follow(training, job["job_id"])
