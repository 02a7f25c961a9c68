"""``emdenoise simulate KIND``: generate training data, and ``simulate sheet`` to look at it.

Kinds: ``hrtem`` (SBD Pt/CeO2, seed 003), ``tem-corpus`` (diverse HRTEM, seed 001
stand-in), ``stem`` (Noise2Atom clean domain, seed 004), ``series`` (HAADF movies).
``simulate exitwaves`` fills the exit-wave bank of :mod:`.exitwaves` (issue 17) and
``simulate crossdomain-hrtem`` writes the fixed cross-domain HRTEM test set of
:mod:`.crossdomain`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from emdenoise.output_dirs import generated_data_dir
from emdenoise.cli_types import positive_float, positive_int
from emdenoise.errors import UserError

_KIND_HELP = {
    "hrtem": "SBD HRTEM: Pt nanoparticles on CeO2, 300 kV, Cs -13 um (seed 003)",
    "tem-corpus": "diverse HRTEM of crystals, particles, edges and amorphous carbon (seed 001 stand-in)",
    "stem": "Noise2Atom clean domain: Gaussian atom peaks, 128 x 128 (seed 004)",
    "series": "low-dose HAADF movies of Pt atoms hopping on carbon, with ground truth",
}


def register(subparsers) -> None:
    """Add the ``simulate`` verb with one sub-verb per kind and ``sheet``."""
    p = subparsers.add_parser("simulate", help="generate simulated training data (abTEM, Gaussian-peak STEM)")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    for kind, text in _KIND_HELP.items():
        k = kinds.add_parser(kind, help=text, description=text)
        k.add_argument("--out", required=True, help="output folder (outside the repository); resumes if it exists")
        k.add_argument("--n", type=positive_int, default=8, help="number of images (series for 'series'), default 8")
        k.add_argument("--seed", type=int, default=0, help="data set seed; image i uses SeedSequence([seed, i])")
        k.add_argument("--shard-size", type=positive_int, default=32, help="images per shard file, default 32")
        k.add_argument("--workers", type=positive_int, default=1, help="worker processes, default 1")
        k.add_argument(
            "--device", choices=("auto", "cpu", "gpu"), default="auto",
            help="abTEM device; auto (default) takes the GPU when CuPy finds one",
        )
        k.add_argument("--sheet", metavar="PNG", help="also write a contact sheet of the first 16 images here")
        if kind == "hrtem":
            k.add_argument("--gpts", type=positive_int, help="simulation grid per side (default 1024)")
            k.add_argument("--bin", type=positive_int, dest="bin_factor", help="binning to the output pixel (default 2)")
            k.add_argument("--dose", type=positive_float, help="vacuum level in counts/px (default 0.45)")
        elif kind == "tem-corpus":
            k.add_argument("--size", type=positive_int, help="output side in pixels (default 256)")
            k.add_argument("--bin", type=positive_int, dest="bin_factor", help="grid points per output pixel (default 2)")
        elif kind == "stem":
            k.add_argument("--peak-counts", type=positive_float, help="counts at a one-atom peak in the noisy copy (default 5)")
        elif kind == "series":
            k.add_argument("--frames", type=positive_int, help="frames per series (default 16)")
            k.add_argument("--size", type=positive_int, help="pixels per side (default 128)")
            k.add_argument("--pixel-size", type=positive_float, dest="pixel_size_a", help="scan step in Å (default 0.35)")
            k.add_argument("--dose", type=positive_float, dest="dose_e_per_a2", help="electrons per Å² per frame (default 2000)")
        k.set_defaults(func=run)
    _register_bank(kinds)
    s = kinds.add_parser("sheet", help="contact sheet PNG of a generated data set")
    s.add_argument("directory", help="folder written by 'emdenoise simulate KIND --out'")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--count", type=positive_int, default=16, help="image pairs to show, default 16")
    s.add_argument("--tile", type=positive_int, default=256, help="tile side in pixels, default 256")
    s.set_defaults(func=run_sheet)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _register_bank(kinds) -> None:
    """``simulate exitwaves`` and ``simulate crossdomain-hrtem`` (issue 17)."""
    text = "exit-wave bank: abTEM multislice waves of diverse specimens (no Pt, no CeO2), cached"
    e = kinds.add_parser("exitwaves", help=text, description=text)
    e.add_argument("--n", type=positive_int, default=400, help="waves in the bank, default 400")
    e.add_argument("--out", default=None,
                   help="bank folder (default $EMDENOISE_CACHE/exitwaves/<version>, else ~/.cache/emdenoise/...)")
    e.add_argument("--seed", type=int, default=0, help="bank seed; wave i depends only on (seed, i)")
    e.add_argument("--start", type=int, default=0, help="first index to compute (split a bank between processes)")
    e.set_defaults(func=run_exitwaves)
    text = "cross-domain HRTEM test set: Pt on CeO2, kirkland potentials, fixed seeds (never trained on)"
    c = kinds.add_parser("crossdomain-hrtem", help=text, description=text)
    c.add_argument("--out", default=None,
                   help="folder (default $EMDENOISE_CACHE/crossdomain-hrtem/<version>, else ~/.cache/emdenoise/...)")
    c.set_defaults(func=run_crossdomain)


def run_exitwaves(args) -> int:
    """Compute (or resume) the exit-wave bank."""
    from emdenoise.simulate.exitwaves import generate_bank

    out = None if args.out is None else _check_out(args.out)
    try:
        summary = generate_bank(out, n=args.n, seed=args.seed, start=args.start,
                                log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as error:
        raise UserError(str(error)) from None
    print(json.dumps(summary))
    return 0


def run_crossdomain(args) -> int:
    """Generate (or find) the cross-domain HRTEM test and validation sets."""
    from emdenoise.simulate.crossdomain import ensure_crossdomain

    out = None if args.out is None else _check_out(args.out)
    paths = ensure_crossdomain(out, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


_OVERRIDES = ("gpts", "bin_factor", "dose", "size", "peak_counts", "frames", "pixel_size_a", "dose_e_per_a2")


def _check_out(out: str) -> Path:
    return generated_data_dir(out, what="generated data")


def _cupy_gpu_count() -> int:
    """Number of CUDA devices CuPy sees (0 without CuPy or without a GPU)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, or CUDA runtime errors on machines without a GPU
        return 0


def run(args) -> int:
    """Generate the data set described by ``args``; returns the exit code."""
    from emdenoise.simulate.generate import default_config, generate

    out = _check_out(args.out)
    config = default_config(args.kind)
    changes = {name: getattr(args, name) for name in _OVERRIDES if getattr(args, name, None) is not None}
    config = dataclasses.replace(config, **changes)
    device = args.device
    if device == "auto":
        device = "gpu" if _cupy_gpu_count() > 0 else "cpu"
    elif device == "gpu" and _cupy_gpu_count() == 0:
        raise UserError("--device gpu needs CuPy and a CUDA GPU; install cupy-cuda12x or use --device cpu")
    workers = min(args.workers, os.cpu_count() or 1)
    try:
        summary = generate(
            args.kind, out, n=args.n, seed=args.seed, shard_size=args.shard_size, workers=workers,
            device=device, config=config, log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    print(json.dumps({"out": str(out), **summary}))
    if args.sheet:
        from emdenoise.simulate.sheet import contact_sheet

        print(f"contact sheet: {contact_sheet(out, args.sheet)}")
    return 0


def run_sheet(args) -> int:
    """Write a contact sheet of an existing data set."""
    from emdenoise.simulate.sheet import contact_sheet

    try:
        path = contact_sheet(args.directory, args.out, count=args.count, tile=args.tile)
    except FileNotFoundError:
        raise UserError(f"{args.directory} is not a simulated data set (no dataset.json); give the --out folder of 'emdenoise simulate'") from None
    except ValueError as error:
        raise UserError(str(error)) from None
    print(path)
    return 0
