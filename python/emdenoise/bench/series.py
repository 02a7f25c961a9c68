"""``emdenoise bench series``: quality without ground truth on a series of the same field.

For each method every frame is restored; then, over consecutive frame pairs,

* CSS (Noise2Atom, seed 004 eq. 10) of the two restorations, all methods sharing one
  intensity scaling (the raw series' min-max), and
* the paired-frame error estimate ``mean((f(A) - B)^2) - mean(B)`` in counts^2 (and with A
  and B swapped), unbiased when the frames' noise is independent Poisson.

CSS rewards blur (constant frames score 1), so it is always printed next to the error.
Frames are converted to counts with the detector gain/offset (given, or estimated by
:func:`emdenoise.noise.calibration.estimate_counts`) and every method works on counts.

Tuned classical rows (issue 17, item 1) join the paper-parameter rows (seed 001 sec. 4.1,
seed 003 sec. 5): with no ground truth, each row's parameter is chosen by the paired-frame
error the table reports, computed on the first frame pairs only (or, for series too short to
spare frames, on the left halves), and every row is also scored on the held-out rest
(:func:`held_out_split`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.bench import plots
from emdenoise.adapt.scores import paired_error
from emdenoise.bench._common import add_common, build_methods, time_ratio_reference
from emdenoise.bench._tuned import SERIES_TUNED, best_row, select_rows, tune_rows, tuned_methods
from emdenoise.cli_types import positive_float, positive_int
from emdenoise.bench.methods import Method, engine_methods
from emdenoise.bench.report import fmt, markdown_table, provenance, write_results
from emdenoise.errors import UserError
from emdenoise.metrics import SharedScaling, css, paired_frame_mse

#: Classical baselines run on a series (both papers' tables, "Unfiltered" first).
SERIES_KEYS = (
    "unfiltered", "gaussian_3x3", "bilateral", "median_3x3", "wiener", "wavelet_bayesshrink",
    "tv_chambolle", "tv_bregman", "nl_means", "low_pass", "adaptive_wiener", "vst_nlm", "vst_bm3d",
)

CONVENTIONS = {
    "counts": "frames converted to counts = (raw - offset) / gain before any method runs",
    "css": "seed 004 eq. 10 with global statistics, C1 = 1e-4, C2 = 9e-4, on the shared scaling "
           "(counts - min) / (max - min) of the raw series; mean over consecutive pairs",
    "paired_mse": "mean((f(A) - B)^2) - mean(B) in counts^2, averaged over both orders of each consecutive pair; "
                  "unbiased for independent Poisson noise; the Unfiltered row estimates the raw noise variance (the dose)",
    "timing": "wall time inside each method call, per megapixel; ratios against the Gaussian filter in the same run",
}

#: Added to the conventions when tuned rows are run.
TUNING_CONVENTION = (
    "no ground truth, so each tuned row's one parameter (Gaussian sigma over emdenoise.tuning.GAUSSIAN_SIGMAS, "
    "median aperture, Wiener window, Chambolle TV weight, low-pass cut-off, adaptive Wiener window, VST+NLM h) is "
    "chosen through emdenoise.tuning.tune by the paired-frame error (emdenoise.adapt.scores.paired_error, both "
    "orders) on the first --tune-pairs consecutive pairs only; every row is then also scored on the held-out pairs, "
    "which share no frame with them (series of fewer than tune-pairs + 3 frames: tuned on the left halves of those "
    "pairs, held-out error on the right halves of all pairs; the all-pairs columns include the tuning data); "
    "the best tuned row is the one with the lowest held-out error"
)


def read_series(path: Path, *, frames: int | None = None, crop: int | None = None) -> np.ndarray:
    """Read a TIFF series as float64 ``(T, Y, X)``; at least two frames.

    Parameters
    ----------
    path : Path
        TIFF file holding the frames.
    frames : int, optional
        Keep only the first ``frames`` frames.
    crop : int, optional
        Keep a centred ``crop x crop`` region.
    """
    import tifffile

    if not path.is_file():
        raise UserError(f"Series file {path} does not exist; pass --stack FILE with two or more frames.")
    try:
        data = np.squeeze(np.asarray(tifffile.imread(path)))
    except Exception as error:  # tifffile raises many types for damaged files
        raise UserError(f"Cannot read {path} as TIFF ({error}); pass a readable TIFF series.") from error
    if data.ndim == 2 or data.ndim != 3:
        raise UserError(
            f"{path} has shape {data.shape}; a series needs two or more greyscale frames of one field (T, Y, X)."
        )
    if data.shape[0] < 2:
        raise UserError(f"{path} holds one frame; a series needs two or more frames of the same field.")
    data = data[:frames] if frames else data
    if data.shape[0] < 2:
        raise UserError("--frames must keep at least two frames.")
    if crop:
        t, h, w = data.shape
        ch, cw = min(crop, h), min(crop, w)
        y, x = (h - ch) // 2, (w - cw) // 2
        data = data[:, y : y + ch, x : x + cw]
    data = data.astype(np.float64)
    if not np.isfinite(data).all():
        raise UserError(f"{path} contains NaN or infinite pixels; a series must be finite.")
    return data


def calibrate(stack: np.ndarray, gain: float | None, offset: float | None) -> dict[str, Any]:
    """Gain and offset to use: both given, or the missing ones estimated from the series."""
    if gain is not None and offset is not None:
        dose = float((stack.mean() - offset) / gain)
        return {"gain": gain, "offset": offset, "dose": dose, "source": "user"}
    from emdenoise.noise.calibration import estimate_counts

    fit = estimate_counts(stack, gain=gain, offset=offset)
    return {"gain": fit.gain, "offset": fit.offset, "dose": fit.dose, "source": fit.source,
            "method": fit.method, "quality": fit.quality, "notes": list(fit.notes)}


def held_out_split(n_frames: int, tune_pairs: int, width: int) -> dict[str, Any]:
    """Which data tune the classical rows and which score them, for a series without ground truth.

    Pair ``t`` is frames ``(t, t + 1)``. With enough frames, pairs ``0 .. k - 1`` (frames
    ``0 .. k``) tune and pairs ``k + 1 ..`` (frames ``k + 1 ..``) are held out, so no frame
    is shared. Shorter series (e.g. one real pair) tune on the left halves of the first
    ``k`` pairs and hold out the right halves of all pairs.

    Parameters
    ----------
    n_frames : int
        Frames in the series (two or more).
    tune_pairs : int
        ``k``, the consecutive pairs used for tuning.
    width : int
        Frame width [px], for the half split.

    Returns
    -------
    dict
        ``{"mode": "frames", "tune": [...], "score": [...]}`` (pair indices) or
        ``{"mode": "halves", "tune": [...], "score": [...], "column": width // 2}``.
    """
    pairs = n_frames - 1
    k = max(1, int(tune_pairs))
    if n_frames >= k + 3:
        return {"mode": "frames", "tune": list(range(k)), "score": list(range(k + 1, pairs))}
    return {"mode": "halves", "tune": list(range(min(k, pairs))), "score": list(range(pairs)), "column": width // 2}


def tune_series_rows(counts: np.ndarray, split: dict[str, Any], kept_keys: list[str]) -> dict[str, dict[str, Any]]:
    """Choose the tuned rows' parameters by the paired-frame error on the tuning pairs only.

    Parameters
    ----------
    counts : ndarray
        ``(T, Y, X)`` series in counts.
    split : dict
        From :func:`held_out_split`; only its ``tune`` pairs (or their left halves) are read.
    kept_keys : list of str
        Fixed-row keys kept by ``--baselines``.

    Returns
    -------
    dict
        See :func:`emdenoise.bench._tuned.tune_rows`; scores under ``"tuning_paired_mse"``.
    """
    cols = slice(0, split["column"]) if split["mode"] == "halves" else slice(None)
    frames = [(counts[t][:, cols].astype(np.float32), counts[t + 1][:, cols].astype(np.float32)) for t in split["tune"]]

    def error(restore) -> float:
        return float(np.mean([paired_error(lambda f: np.asarray(restore(f), np.float64), a, b) for a, b in frames]))

    return tune_rows(select_rows(SERIES_TUNED, kept_keys), error, criterion="tuning_paired_mse")


def run_series(methods: list[Method], counts: np.ndarray, truth: np.ndarray | None = None,
               held_out: dict[str, Any] | None = None) -> dict[str, Any]:
    """CSS and paired-frame error per method over the consecutive pairs of ``counts``; with
    ``truth`` (noise-free counts of the same frames) also PSNR and SSIM per frame; with
    ``held_out`` (:func:`held_out_split`) also the paired error on the held-out data
    (``held_out_mse``, one value per held-out pair)."""
    from emdenoise.metrics import psnr, ssim_sbd

    scaling = SharedScaling.from_frames(counts)
    results: dict[str, Any] = {}
    example: dict[str, np.ndarray] = {"frame 0": counts[0], "frame 1": counts[1]}
    for m in methods:
        restored = [m(frame.astype(np.float32)).astype(np.float64) for frame in counts]
        css_values, errors = [], []
        for t in range(len(counts) - 1):
            css_values.append(css(scaling(restored[t]), scaling(restored[t + 1])))
            errors.append(0.5 * (paired_frame_mse(restored[t], counts[t + 1])
                                 + paired_frame_mse(restored[t + 1], counts[t])))
        results[m.name] = {"css": css_values, "paired_mse": errors}
        if held_out is not None and held_out["mode"] == "frames":
            results[m.name]["held_out_mse"] = [errors[t] for t in held_out["score"]]
        elif held_out is not None:
            c = held_out["column"]
            results[m.name]["held_out_mse"] = [
                0.5 * (paired_frame_mse(restored[t][:, c:], counts[t + 1][:, c:])
                       + paired_frame_mse(restored[t + 1][:, c:], counts[t][:, c:])) for t in held_out["score"]]
        if truth is not None:
            results[m.name]["psnr"] = [psnr(r, t) for r, t in zip(restored, truth)]
            results[m.name]["ssim"] = [ssim_sbd(r, t) for r, t in zip(restored, truth)]
        example[m.name] = restored[0]
    return {"scores": results, "example": example, "scaling": {"lo": scaling.lo, "hi": scaling.hi}}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench series``."""
    p = subparsers.add_parser(
        "series",
        help="CSS and paired-frame error of denoisers on a real series (no ground truth)",
        description="Noise2Atom CSS of consecutive restored frames next to the unbiased paired-frame error.",
    )
    p.add_argument("--stack", type=Path, required=True, metavar="FILE",
                   help="TIFF with two or more frames of the same field (T, Y, X)")
    p.add_argument("--gain", type=positive_float, default=None,
                   help="detector units per count (default: estimated from the series)")
    p.add_argument("--offset", type=float, default=None,
                   help="detector reading at zero counts (default: estimated from the series)")
    p.add_argument("--frames", type=positive_int, default=None, help="use the first N frames only")
    p.add_argument("--crop", type=positive_int, default=None, help="use a centred CROP x CROP region")
    p.add_argument("--truth", type=Path, default=None, metavar="FILE",
                   help="noise-free expected counts of the same frames (simulated series): adds PSNR and SSIM")
    p.add_argument("--no-tune", action="store_true",
                   help="print the paper-parameter rows only (no tuned rows, no held-out column)")
    p.add_argument("--tune-pairs", type=positive_int, default=1,
                   help="first consecutive frame pairs that tune the classical rows (default: 1); "
                        "the rest are held out for scoring")
    add_common(p, default_out="emdenoise-bench/series")
    from emdenoise.bench.series_train import add_train_arguments

    add_train_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bench series`` and print its table."""
    from emdenoise.bench.series_train import engine_for, train_on_stack

    model_ids, args.method = list(args.method), [] if args.models else list(args.method)
    methods = build_methods(SERIES_KEYS, args)  # first: a bad method name fails before any work
    if args.models:
        methods += engine_methods(model_ids, engine=engine_for(args, []))
    stack = read_series(args.stack, frames=args.frames, crop=args.crop)
    truth = None
    if args.truth is not None:
        truth = read_series(args.truth, frames=args.frames, crop=args.crop)
        if truth.shape != stack.shape:
            raise UserError(f"--truth {args.truth} has shape {truth.shape} but the stack {stack.shape}; give the clean frames of the same series.")
    calibration = calibrate(stack, args.gain, args.offset)
    counts = (stack - calibration["offset"]) / calibration["gain"]
    trained = None
    if args.train:
        trained = train_on_stack(counts, args, name=args.stack.name)
        methods += engine_methods([trained["model_id"]], engine=engine_for(args, [Path(trained["models_dir"])]))
        methods[-1].name = f"Noise2Atom ({trained['model_id']})"
    tuned, split, tuned_ms = {}, None, []
    kept = [m.key for m in methods if m.kind == "classical"]
    if not args.no_tune and select_rows(SERIES_TUNED, kept):
        split = held_out_split(counts.shape[0], args.tune_pairs, counts.shape[2])
        tuned = tune_series_rows(counts, split, kept)
        tuned_ms = tuned_methods(SERIES_TUNED, tuned)
        fixed = [m for m in methods if m.kind == "classical"]
        methods = fixed + tuned_ms + [m for m in methods if m.kind != "classical"]
    raw = run_series(methods, counts, truth, held_out=split)

    reference = time_ratio_reference(methods, "gaussian_3x3")
    unfiltered = next((m.name for m in methods if m.key == "unfiltered"), None)
    base_err = float(np.mean(raw["scores"][unfiltered]["paired_mse"])) if unfiltered else float("nan")
    rows, table = [], []
    for m in methods:
        c = float(np.mean(raw["scores"][m.name]["css"]))
        e = float(np.mean(raw["scores"][m.name]["paired_mse"]))
        ratio = m.seconds_per_megapixel / reference.seconds_per_megapixel
        quality = []
        if truth is not None:
            p_mean, s_mean = float(np.mean(raw["scores"][m.name]["psnr"])), float(np.mean(raw["scores"][m.name]["ssim"]))
            quality = [fmt(p_mean, 2), fmt(s_mean, 4)]
        rows.append({"name": m.name, "key": m.key, "kind": m.kind, "params": m.params, "css": c,
                     "paired_mse": e, "paired_mse_vs_unfiltered": e / base_err,
                     "seconds_per_megapixel": m.seconds_per_megapixel, "time_ratio": ratio,
                     "time_reference": reference.name, "per_pair": raw["scores"][m.name]})
        if truth is not None:
            rows[-1].update(psnr_mean=p_mean, ssim_mean=s_mean)
        held = []
        if split is not None:
            rows[-1]["held_out_mse"] = float(np.mean(raw["scores"][m.name]["held_out_mse"]))
            rows[-1]["tuned"] = m in tuned_ms
            held = [fmt(rows[-1]["held_out_mse"], 3)]
        table.append([m.name, *quality, fmt(c, 4), fmt(e, 3), fmt(e / base_err, 3), *held,
                      fmt(m.seconds_per_megapixel, 3), fmt(ratio, 1)])
    md = markdown_table(["Method", *(["PSNR (dB)", "SSIM"] if truth is not None else []), "CSS", "paired MSE (counts^2)", "x Unfiltered MSE",
                         *(["held-out paired MSE (counts^2)"] if split is not None else []), "s / megapixel",
                         f"time x {reference.name}"], table)
    best, versus, tuned_md = None, {}, ""
    found = best_row({r["name"]: r["held_out_mse"] for r in rows if r.get("tuned")})
    if found is not None:
        best = {"name": found[0], "held_out_mse": found[1]}
        where = (f"pairs {split['tune']} (frames {split['tune'][0]}-{split['tune'][-1] + 1}); held out: pairs "
                 f"{split['score'][0]}-{split['score'][-1]}" if split["mode"] == "frames" else
                 f"left halves of pairs {split['tune']}; held out: right halves of all {len(split['score'])} pair(s)")
        tuned_md = (f"Tuned by paired-frame error on {where}: {'; '.join(t['label'] for t in tuned.values())}.\n\n"
                    f"Best tuned classical row (lowest held-out paired MSE): {found[0]}, {found[1]:.4g} counts^2.")
        model_rows = [r for r in rows if r["kind"] == "engine"]
        for r in model_rows:
            versus[r["name"]] = {"held_out_mse": r["held_out_mse"], "ratio_to_best_tuned": r["held_out_mse"] / found[1]}
        if model_rows:
            tuned_md += "\n\n" + markdown_table(
                ["Model", "held-out paired MSE (counts^2)", f"x {found[0]}"],
                [[n, fmt(v["held_out_mse"], 3), fmt(v["ratio_to_best_tuned"], 3)] for n, v in versus.items()])
    t, h, w = counts.shape
    cal = (f"gain {calibration['gain']:.4g}, offset {calibration['offset']:.6g} ({calibration['source']}), "
           f"dose {calibration['dose']:.3f} counts/px/frame")
    notes = " ".join(calibration.get("notes", []))
    title = f"## bench series: {args.stack.name}, {t} frames of {h}x{w} px\n\nCounts: {cal}. {notes}".rstrip()
    if truth is not None:
        title += f"\n\nGround truth: {args.truth.name} (PSNR with peak = each clean frame's range, SSIM of Wang et al. 2004)."
    if trained is not None:
        title += (f"\n\nNoise2Atom (seed 004) trained on this stack: preset {trained['preset']}, {trained['steps_run']} steps "
                  f"({trained['stopped']}), kept step {trained['checkpoint_step']} (lowest held-out thinned MSE), "
                  f"{trained['wall_seconds_training']:.0f} s training on {trained['device'].upper()} ({trained['wall_seconds_job']:.0f} s with start-up and ONNX export).")
    used = {**CONVENTIONS, "tuning": TUNING_CONVENTION} if tuned else CONVENTIONS
    conventions = "\n".join(f"- {k}: {v}" for k, v in used.items())
    tuned_part = f"\n\n{tuned_md}" if tuned_md else ""
    markdown = f"{title}\n\n{md}{tuned_part}\n\nConventions:\n{conventions}"

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = np.percentile(counts[0], [0.5, 99.5])
    figures = [plots.montage(out / "series-frame0.png", raw["example"], shared_range=(float(lo), float(hi)))]
    result = {
        "protocol": "series",
        "reference": "seed 004 eq. 10 (CSS); paired-frame error estimate (issue 4)",
        "stack": str(args.stack), "frames": t, "shape": [h, w], "crop": args.crop,
        "calibration": calibration, "css_scaling": raw["scaling"], "conventions": used,
        "methods": rows, "figures": [p.name for p in figures], "provenance": provenance(),
        "truth": str(args.truth) if args.truth else None, "trained": trained,
    }
    if tuned:
        result.update(tuned=tuned, held_out=split, best_tuned=best, models_vs_best_tuned=versus)
    written = write_results(out, "series", result, markdown)
    print(markdown)
    print("\nWrote " + ", ".join(str(p) for p in [*written, *figures]))
    return 0
