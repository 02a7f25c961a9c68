"""``emdenoise likelihood NOISY [--denoised FILE | --model ID] -o OUT``: likelihood maps (seed 003, sec. 3).

With a model, the estimate never sees the counts it is tested on: a second frame of the
same area (``--test-frame N`` of the same stack, or ``--test-file FILE``) is tested against
the estimate of ``--frame``; without one, the frame's counts are split by binomial
thinning (``--holdout thin``).

Writes into the folder OUT: ``<stem>_llr.tif`` (float32 map, NaN outside the column
regions), ``<stem>_llr-overlay.png`` (red: supported, blue: contradicted),
``<stem>_llr-preview.png`` (the overlay on the estimate), ``<stem>_llr-regions.csv``
and ``<stem>_llr-rois.zip`` (ImageJ ROI Manager set, coloured by LLR).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from emdenoise.commands.denoise import MODALITIES, add_connection_arguments, client_from_args
from emdenoise.errors import UserError
from emdenoise.likelihood.compute import MAP_UNITS, LikelihoodSettings
from emdenoise.likelihood.regions import POLARITIES, VACUUM_METHODS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "likelihood",
        help="likelihood map: is each restored atom column supported by the raw counts?",
        description="Detect atom columns in the denoised image and test each against the vacuum with the "
        "Poisson log-likelihood ratio of the raw counts (SBD, Mohan et al., sec. 3). The test is only as "
        "independent as the estimate: a filter that follows the local noise (a small Gaussian or median) makes "
        "noise blobs look supported; for a strict test give --denoised the estimate of another frame of the "
        "same area.",
    )
    p.add_argument("noisy", type=Path, metavar="NOISY", help="raw frame (TIFF or EM file) in counts, or give --gain/--offset")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--denoised", type=Path, metavar="FILE", help="denoised estimate of NOISY (same units)")
    source.add_argument("--model", help="denoise NOISY with this model (default: the modality's default)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--modality", default="any", choices=MODALITIES, help="picks the default model")
    p.add_argument("--frame", type=int, default=0,
                   help="frame of a stack to test (0-based, default 0); with --test-frame/--test-file, the frame the "
                   "model's estimate is made from")
    p.add_argument("--test-frame", type=int, metavar="N",
                   help="test frame N of the same stack (or of --test-file) against the estimate of --frame: "
                   "a second exposure of the same area, so no thinning is needed")
    p.add_argument("--test-file", type=Path, metavar="FILE",
                   help="a second exposure of the same area (aligned, same size and calibration) to test against "
                   "the estimate of NOISY's --frame")
    p.add_argument("--gain", type=float, help="detector reading per electron")
    p.add_argument("--offset", type=float, help="detector reading at zero electrons")
    defaults = LikelihoodSettings()
    p.add_argument("--polarity", default=defaults.polarity, choices=POLARITIES, help="columns brighter or darker than vacuum")
    p.add_argument("--vacuum", default=defaults.vacuum, choices=VACUUM_METHODS,
                   help="vacuum = flat region (HRTEM) or dark region (ADF STEM)")
    p.add_argument("--vacuum-level", type=float, help="vacuum rate in counts/px (skips the vacuum search)")
    p.add_argument("--min-sigma", type=float, default=defaults.min_sigma, help="smallest column scale, pixels")
    p.add_argument("--max-sigma", type=float, default=defaults.max_sigma, help="largest column scale, pixels")
    p.add_argument("--threshold", type=float, default=defaults.threshold, help="blob detection threshold (contrast)")
    p.add_argument("--map-units", default=defaults.map_units, choices=MAP_UNITS, help="map value per region")
    p.add_argument("--holdout", default=defaults.holdout, choices=("thin", "none"),
                   help="one frame with a model: thin (default) estimates from a binomial half of the counts and tests "
                   "the other half; none tests the counts the estimate was made from (biased towards supported)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_connection_arguments(p)
    p.set_defaults(func=run)


def read_frame(path: Path, index: int, *, single_ok: bool = False):
    """Frame ``index`` of an image file, its metadata and frame count (``single_ok``: a
    one-frame file gives its frame whatever ``index``)."""
    from emdenoise.workflow import open_frames

    frames, metadata, count = open_frames(path)
    if single_ok and count == 1:
        index = 0
    if count == 0:
        raise UserError(f"{path} holds no frames; give a 2-D image.")
    if not 0 <= index < count:
        raise UserError(f"{path} has {count} frame(s), so --frame {index} does not exist; pick 0 to {count - 1}.")
    for position, frame in enumerate(frames):
        if position == index:
            return np.asarray(frame), metadata, count
    raise UserError(f"{path} ended before frame {index}; the file may be truncated.")


def run(args) -> int:
    from emdenoise.likelihood.export import write_outputs

    noisy, metadata, count = read_frame(args.noisy, args.frame)
    denoised = estimate_frame = None
    tested = args.frame
    if args.test_frame is not None or args.test_file is not None:
        if args.denoised is not None:
            raise UserError("--test-frame/--test-file test a second frame against a model's estimate; drop --denoised "
                            "(or give the estimate of the tested frame with --denoised and no second frame).")
        tested = args.test_frame if args.test_frame is not None else 0
        if args.test_file is None and tested == args.frame:
            raise UserError(f"--test-frame {tested} is the frame the estimate is made from (--frame {args.frame}); "
                            "pick another frame of the stack.")
        estimate_frame = noisy
        noisy, _, _ = read_frame(args.test_file or args.noisy, tested, single_ok=args.test_file is not None)
    elif args.denoised is not None:
        denoised, _, _ = read_frame(args.denoised, args.frame, single_ok=True)
    gain = args.gain if args.gain is not None else metadata.gain
    offset = args.offset if args.offset is not None else metadata.offset
    settings = dict(
        polarity=args.polarity, vacuum=args.vacuum, vacuum_level=args.vacuum_level, min_sigma=args.min_sigma,
        max_sigma=args.max_sigma, threshold=args.threshold, map_units=args.map_units, holdout=args.holdout,
    )
    LikelihoodSettings.from_options(**settings)  # bad options fail before a server is contacted
    with client_from_args(args) as client:
        extra = {} if estimate_frame is None else {"estimate_frame": estimate_frame}
        result = client.likelihood(
            noisy, denoised, args.model, modality=args.modality, gain=gain, offset=offset, **settings, **extra
        )
    source = args.test_file or args.noisy
    stem = source.stem if count == 1 and args.test_frame is None else f"{source.stem}_frame{tested}"
    provenance = {
        "likelihood": "seed 003 sec. 3: Poisson log-likelihood ratio, column vs vacuum, per region",
        "estimate": result.info.get("model_id") or (args.denoised.name if args.denoised else ""),
        "graph_sha256": result.info.get("graph_sha256") or "none",
        "version": result.info.get("emdenoise_version", ""),
        "source": source.name,
        "frame": str(tested),
        "estimate_from": "" if estimate_frame is None else f"{args.noisy.name} frame {args.frame}",
        "gain": "counts as given" if gain is None and offset is None else f"{gain if gain is not None else 1:g}",
        "offset": "counts as given" if gain is None and offset is None else f"{offset if offset is not None else 0:g}",
        "vacuum_level": f"{result.vacuum_level:.6g} counts/px",
        "polarity": result.polarity,
        "map_units": result.map_units,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    written = write_outputs(result, args.output, stem, metadata=metadata, provenance=provenance, overwrite=args.overwrite)
    if estimate_frame is not None:
        print(f"tested {source.name} frame {tested} against the estimate of {args.noisy.name} frame {args.frame}.")
    elif count > 1:
        print(f"tested frame {args.frame} of {count}; pick another with --frame, or test a second frame with --test-frame.")
    print(result.message)
    for path in written.values():
        print(path)
    return 0
