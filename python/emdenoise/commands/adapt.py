"""``emdenoise adapt INPUT... --name ID``: a denoiser trained on your own frames, in minutes (issue 18).

The frames (one file holding a frame, a pair or a series, or several files of one field)
go to a training job -- a worker process of this command, or the server with
``--server`` -- that picks the self-supervised method the data allow (pair / series:
Noise2Noise between registered frames; one frame of whole counts: binomial thinning; one
frame otherwise: a blind-spot network whose mask covers the scan-line noise correlation),
keeps a strip of every frame out of training, and scores the network and ``classical-auto``
(a Gaussian / VST + NLM tuned on the same strip) by the same no-truth error. Both figures
are printed; when the network is not better it says so, and its card records it.
``--method noise2atom`` runs seed 004's method (as ``train-series``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from emdenoise.cli_types import key_value_settings, positive_float, positive_int
from emdenoise.commands.denoise import add_connection_arguments, client_from_args
from emdenoise.commands.train_series import follow
from emdenoise.errors import UserError

METHOD_CHOICES = ("auto", "pair", "thinning", "blindspot", "sure", "noise2atom")
MODALITY_CHOICES = ("any", "tem", "hrtem", "stem")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "adapt",
        help="train a denoiser on your own frames (pair, series or single frame; self-supervised)",
        description="Self-supervised training on your own frames (issue 18): Noise2Noise between registered frames, "
                    "binomial thinning of whole counts, or a blind-spot network on a single frame, scored against "
                    "classical-auto on held-out rows. The model lands in the user model directory ($EMDENOISE_MODELS). "
                    "Needs the [train] extra where the training runs.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="TIFF/EM files of one field: a frame, a pair, a series or a movie (frames of all files are used)")
    p.add_argument("--name", required=True, metavar="ID", help="id of the new model, e.g. adapt-srtio3-1")
    p.add_argument("--from", dest="from_model", metavar="MODEL", help="start from a model made by adapt before, or a sim-trained VST U-Net (e.g. sim-vstunet32-stem-r2)")
    p.add_argument("--method", default="auto", choices=METHOD_CHOICES,
                   help="auto (default: thinning for whole counts, else pair for 2+ frames, else blindspot; sure when --from is a sim-trained model)")
    p.add_argument("--minutes", type=positive_float, default=10.0, help="training time (default 10)")
    p.add_argument("--steps", type=positive_int, help="stop after this many steps (default: the time limit)")
    p.add_argument("--modality", default="any", choices=MODALITY_CHOICES, help="recorded on the card")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other setting (emdenoise.adapt.config.AdaptConfig), e.g. --set width=32 (repeatable)")
    p.add_argument("--gain", type=positive_float, help="detector reading per electron (default: estimated)")
    p.add_argument("--offset", type=float, help="detector reading at zero electrons (default: estimated)")
    p.add_argument("--detach", action="store_true", help="print the job id and return (server only)")
    add_connection_arguments(p)
    p.set_defaults(func=run)


def read_inputs(paths: list[Path]) -> list:
    """Every frame of every input file, in order (one field of view)."""
    from emdenoise.train.series_checks import read_series_file

    frames: list = []
    for path in paths:
        frames += read_series_file(path)
    return frames


def run(args) -> int:
    settings = key_value_settings(args.set, "--set", "width=32")
    settings["max_seconds"] = float(args.minutes) * 60
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.detach and not args.server:
        raise UserError("--detach needs --server: an embedded job ends with this command.")
    frames = read_inputs(args.inputs)
    names = ", ".join(path.name for path in args.inputs)
    with client_from_args(args) as client:
        training = client.training
        if args.method == "noise2atom":
            if args.from_model:
                raise UserError("--from works with the adapt methods; noise2atom always starts from scratch.")
            job = training.start(frames, args.name, gain=args.gain, offset=args.offset, preset="cpu",
                                 settings=settings, series_name=names)
        else:
            settings.update(method=args.method, modality=args.modality)
            if args.from_model:
                settings["from_model"] = args.from_model
            job = training.start(frames, args.name, gain=args.gain, offset=args.offset, settings=settings,
                                 series_name=names, recipe="adapt")
        where = f"server {args.server}" if args.server else "a local worker"
        print(f"job {job['job_id']}: adapting {args.name} on {where} ({job['message']})", flush=True)
        if args.detach:
            print(f"follow it with: emdenoise train-series --watch {job['job_id']} --server {args.server}")
            return 0
        return follow(training, job["job_id"], out=sys.stdout)
