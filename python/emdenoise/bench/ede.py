"""``emdenoise bench ede``: Ede & Beanland's Table 1 and Fig. 4/5 protocol (seed 001, sec. 4.1).

Each noise instance is a clean crop prepared as in sec. 3.1 (area downsampling, random
512x512 crop, random flip/rotation, [0, 1] scaling), Poisson noise at a dose drawn from
the low or ordinary law, and the truth rescaled to the noisy crop's mean. Every method
sees the [0, 1] noisy crop; its output is clipped to [0, 1] and scored with MSE and SSIM
(seed 001 settings, see :data:`CONVENTIONS`).

Next to the paper's fixed-parameter rows (Table 1, "default parameters") the benchmark adds
tuned rows (issue 17, item 1): a Gaussian whose sigma, and the Wiener window, median
aperture and Chambolle TV weight, are chosen by mean MSE on validation instances drawn
from their own random stream (:func:`validation_pairs`), so that a network is compared with
classical filters that fit the dose. ``--no-tune`` prints the paper's rows only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.bench import plots
from emdenoise.bench._common import add_common, build_methods, time_ratio_reference
from emdenoise.bench._tuned import EDE_TUNED, best_row, select_rows, tune_rows, tuned_methods
from emdenoise.cli_types import positive_int
from emdenoise.bench.clean import CleanSet, load_clean_dir, synthetic_clean_set
from emdenoise.bench.methods import Method
from emdenoise.bench.report import fmt, markdown_table, provenance, stats, write_results
from emdenoise.errors import UserError
from emdenoise.metrics import MeanAbsErrorMap, mse, ssim_ede
from emdenoise.noise.ede import NoisyPair, ede_noisy_pair, random_training_crop, sample_dose_scale

#: Seed 001, Table 1: (MSE mean, MSE std) x 1e-3 and (SSIM mean, SSIM std) per method.
PAPER_TABLE = {
    "low": {
        "Unfiltered": (4.357, 2.558, 0.454, 0.208),
        "Gaussian": (0.816, 0.452, 0.685, 0.159),
        "Bilateral": (1.025, 1.152, 0.574, 0.261),
        "Median": (1.083, 0.618, 0.618, 0.171),
        "Wiener": (1.068, 0.546, 0.681, 0.137),
        "Wavelet": (0.832, 0.58, 0.657, 0.186),
        "Chambolle TV": (0.746, 0.725, 0.686, 0.192),
        "Bregman TV": (1.109, 1.031, 0.544, 0.268),
        "NL means": (2.924, 2.338, 0.357, 0.315),
        "Neural network": (0.562, 0.449, 0.752, 0.147),
    },
    "ordinary": {
        "Unfiltered": (0.508, 0.682, 0.850, 0.123),
        "Gaussian": (0.344, 0.334, 0.878, 0.087),
        "Bilateral": (1.243, 1.392, 0.600, 0.271),
        "Median": (0.507, 0.512, 0.821, 0.126),
        "Wiener": (0.402, 0.389, 0.870, 0.085),
        "Wavelet": (0.357, 0.312, 0.875, 0.085),
        "Chambolle TV": (0.901, 0.909, 0.674, 0.217),
        "Bregman TV": (4.074, 3.025, 0.348, 0.312),
        "NL means": (1.403, 1.266, 0.545, 0.281),
        "Neural network": (0.201, 0.169, 0.926, 0.057),
    },
}

CONVENTIONS = {
    "crop": "clean micrograph area-downsampled, random crop, random flip/90-degree rotation, min-max to [0, 1] (seed 001 sec. 3.1)",
    "dose_low": "s = 25 + Exp(beta = 75) counts at the brightest pixel (seed 001 eq. 1)",
    "dose_ordinary": "s ~ Uniform(200, 2500) (seed 001 sec. 3.1)",
    "noisy": "Poisson(s * clean01), then min-max to [0, 1] (released gen_lq)",
    "truth": "clean01 * mean(noisy) / mean(clean01), not clipped (seed 001 sec. 3.1)",
    "outputs": "every method's output clipped to [0, 1] before scoring (seed 001 sec. 3.2)",
    "mse": "mean((clip(output) - truth)^2) on the [0, 1] scale",
    "ssim": "skimage structural_similarity, 7x7 uniform window, data_range = output max - min (released apply_filters.py)",
    "kde": "scipy gaussian_kde with Scott's rule on the per-image values; curves of one figure scaled so the highest peak is 1 (seed 001 sec. 4.1)",
    "mae_maps": "per-pixel mean absolute error over all instances (seed 001 Fig. 5), shown with CLAHE as in the paper",
    "timing": "wall time inside each method call, per megapixel, single process; ratios against the Gaussian filter measured in the same run",
}

#: Added to the conventions when tuned rows are run.
TUNING_CONVENTION = (
    "tuned rows: one parameter each (Gaussian sigma over emdenoise.tuning.GAUSSIAN_SIGMAS, median aperture, Wiener "
    "window, Chambolle TV weight) chosen through emdenoise.tuning.tune by mean MSE (same clipping and truth as the "
    "scored rows) on validation instances: same dose law and crop recipe, noise and crops from "
    "default_rng([seed, 1000003, i]) (scored instances: default_rng([seed, i])), clean frames from a synthetic set of "
    "another seed, from --val-clean, or else the same frames as the test; the best tuned row is the one with the "
    "lowest scored mean MSE"
)

#: Seed-sequence word that separates validation draws from the scored ones.
VALIDATION_STREAM = 1_000_003


def draw_instance(clean: CleanSet, i: int, rng: np.random.Generator, *, dose: str, crop: int, downsample: int,
                  law: str = "paper") -> tuple[Any, np.ndarray, float, NoisyPair]:
    """Noise instance ``i``: frame ``i % len(clean.images)``, crop, dose and Poisson draw (seed 001, sec. 3.1).

    Returns
    -------
    tuple
        ``(clean image item, [0, 1] crop, dose scale, NoisyPair)``.
    """
    item = clean.images[i % len(clean.images)]
    crop01 = random_training_crop(item.image, rng, size=crop, downsample=downsample)
    scale = sample_dose_scale(dose, rng, law=law)
    return item, crop01, scale, ede_noisy_pair(crop01, scale, rng)


def validation_pairs(clean: CleanSet, n: int, *, dose: str, crop: int, downsample: int, seed: int,
                     law: str = "paper") -> list[NoisyPair]:
    """Validation instances for the tuned rows: the scored protocol on its own random stream.

    Instance ``i`` draws from ``numpy.random.default_rng([seed, VALIDATION_STREAM, i])``,
    independent of the scored instances' ``default_rng([seed, i])``, with the same dose law
    and crop recipe (seed 001, sec. 3.1). Pass a ``clean`` set the test does not use where
    one exists.

    Parameters
    ----------
    clean : CleanSet
        Clean frames for validation.
    n : int
        Instances (8 is enough to place a smooth one-parameter optimum).
    dose, crop, downsample, seed, law
        As for :func:`run_ede`.

    Returns
    -------
    list of NoisyPair
    """
    return [draw_instance(clean, i, np.random.default_rng([seed, VALIDATION_STREAM, i]), dose=dose, crop=crop,
                          downsample=downsample, law=law)[3] for i in range(n)]


def tune_ede_rows(pairs: list[NoisyPair], kept_keys: list[str]) -> dict[str, dict[str, Any]]:
    """Choose the tuned rows' parameters by mean validation MSE (outputs clipped, as scored; seed 001, sec. 3.2).

    Parameters
    ----------
    pairs : list of NoisyPair
        Validation instances (:func:`validation_pairs`).
    kept_keys : list of str
        Fixed-row keys kept by ``--baselines``; only their tuned rows are tuned.

    Returns
    -------
    dict
        See :func:`emdenoise.bench._tuned.tune_rows`; scores under ``"validation_mse"``.
    """
    def error(restore) -> float:
        return float(np.mean([mse(np.clip(restore(p.noisy), 0.0, 1.0), p.truth) for p in pairs]))

    return tune_rows(select_rows(EDE_TUNED, kept_keys), error, criterion="validation_mse")


def run_ede(
    clean: CleanSet,
    methods: list[Method],
    *,
    dose: str,
    n: int,
    crop: int,
    downsample: int,
    seed: int,
    law: str = "paper",
    keep_example: bool = True,
) -> dict[str, Any]:
    """Run the protocol and return per-method scores and per-instance facts.

    Parameters
    ----------
    clean : CleanSet
        Clean frames; instance ``i`` uses frame ``i % len(clean.images)``.
    methods : list of Method
        Denoisers under test (called on the [0, 1] noisy crop).
    dose : {"low", "ordinary"}
        Dose law (seed 001, sec. 3.1).
    n : int
        Noise instances (20000 in the paper).
    crop, downsample : int
        Crop side and area-downsampling factor.
    seed : int
        Instance ``i`` draws everything from ``numpy.random.default_rng([seed, i])``.
    law : {"paper", "released-benchmark"}
        Low-dose law (see :func:`emdenoise.noise.ede.sample_dose_scale`).
    keep_example : bool
        Keep instance 0's images for the example montage.

    Returns
    -------
    dict
        ``scores[name] = {"mse": [...], "ssim": [...]}``, ``mae_maps[name]``,
        ``instances`` (clean name, dose scale, mean clean intensity, counts span) and,
        when asked, ``example`` panels.
    """
    if not clean.images:
        raise UserError("The clean set is empty; pass a folder with at least one TIFF.")
    scores = {m.name: {"mse": [], "ssim": []} for m in methods}
    maps = {m.name: MeanAbsErrorMap() for m in methods}
    instances = []
    example: dict[str, np.ndarray] = {}
    for i in range(n):
        item, crop01, scale, pair = draw_instance(clean, i, np.random.default_rng([seed, i]), dose=dose, crop=crop,
                                                  downsample=downsample, law=law)
        instances.append({
            "clean": item.name,
            "scale": scale,
            "clean_mean": float(crop01.mean()),
            "counts_span": pair.counts_per_unit,
        })
        if keep_example and i == 0:
            example = {"truth": pair.truth, "noisy": pair.noisy}
        for method in methods:
            out = np.clip(method(pair.noisy), 0.0, 1.0)
            scores[method.name]["mse"].append(mse(out, pair.truth))
            scores[method.name]["ssim"].append(ssim_ede(out, pair.truth))
            maps[method.name].add(out, pair.truth)
            if keep_example and i == 0:
                example[method.name] = out
    return {
        "scores": scores,
        "mae_maps": {k: v.map() for k, v in maps.items()},
        "instances": instances,
        "example": example,
    }


def protocol_check(instances: list[dict[str, Any]]) -> dict[str, float]:
    """Factors behind the "Unfiltered" MSE (issue part 5).

    With ``noisy = P / D`` (``P ~ Poisson(s x)``, ``D`` the counts span, min counts ~ 0)
    and ``truth ~ s x / D``, the unfiltered MSE is about ``mean(x) * s / D^2``: an image
    factor (mean of the [0, 1] clean crop) times a dose factor ``s / D^2 ~ 1 / s``.

    Returns
    -------
    dict
        ``mean_clean_intensity``, ``mean_dose_factor`` (mean of ``s / D^2``),
        ``predicted_unfiltered_mse`` (mean of the product) and ``mean_scale``.
    """
    x = np.array([r["clean_mean"] for r in instances])
    s = np.array([r["scale"] for r in instances])
    d = np.array([r["counts_span"] for r in instances])
    return {
        "mean_clean_intensity": float(x.mean()),
        "mean_scale": float(s.mean()),
        "mean_dose_factor": float(np.mean(s / d**2)),
        "predicted_unfiltered_mse": float(np.mean(x * s / d**2)),
    }


def summarize(
    methods: list[Method], raw: dict[str, Any], dose: str, tuned_names: frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], str]:
    """Per-method summary rows and the Markdown report body (``tuned_names``: rows marked ``"tuned": true``)."""
    reference = time_ratio_reference(methods, "gaussian_3x3")
    paper = PAPER_TABLE[dose]
    rows, table, timing = [], [], []
    for m in methods:
        mse_mean, mse_std = stats(raw["scores"][m.name]["mse"])
        ssim_mean, ssim_std = stats(raw["scores"][m.name]["ssim"])
        ratio = m.seconds_per_megapixel / reference.seconds_per_megapixel
        ref = paper.get(m.name)
        rows.append({
            "name": m.name, "key": m.key, "kind": m.kind, "params": m.params,
            "mse_mean": mse_mean, "mse_std": mse_std, "ssim_mean": ssim_mean, "ssim_std": ssim_std,
            "mean_abs_error": float(raw["mae_maps"][m.name].mean()),
            "seconds_per_megapixel": m.seconds_per_megapixel,
            "time_ratio": ratio, "time_reference": reference.name,
            "paper": None if ref is None else dict(zip(("mse_mean_e3", "mse_std_e3", "ssim_mean", "ssim_std"), ref)),
            "per_image": raw["scores"][m.name],
        })
        if tuned_names:
            rows[-1]["tuned"] = m.name in tuned_names
        table.append([
            m.name, fmt(mse_mean * 1e3), fmt(mse_std * 1e3), fmt(ssim_mean), fmt(ssim_std),
            fmt(ref[0]) if ref else "-", fmt(ref[2]) if ref else "-",
        ])
        timing.append([m.name, fmt(m.seconds_per_megapixel, 3), fmt(ratio, 1)])
    md = markdown_table(
        ["Method", "MSE mean (1e-3)", "MSE std (1e-3)", "SSIM mean", "SSIM std",
         "paper MSE mean (1e-3)", "paper SSIM mean"],
        table,
    )
    md_time = markdown_table(["Method", "s / megapixel", f"x {reference.name}"], timing)
    return rows, md + "\n\n" + md_time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench ede``."""
    p = subparsers.add_parser(
        "ede",
        help="Ede & Beanland Table 1: MSE/SSIM of denoisers on Poisson-noised clean crops",
        description="Seed 001's benchmark: Table 1 (mean/std of MSE and SSIM), Fig. 4 KDE plots, Fig. 5 error maps.",
    )
    p.add_argument("--clean", type=Path, default=None, metavar="DIR",
                   help="folder of high-dose TIFF micrographs (default: synthetic lattices)")
    p.add_argument("--dose", choices=("low", "ordinary"), default="low",
                   help="low: 25 + Exp(75) counts; ordinary: 200-2500 counts (default: low)")
    p.add_argument("--n", type=positive_int, default=20, help="noise instances (default: 20; paper: 20000)")
    p.add_argument("--crop", type=positive_int, default=512, help="crop side in pixels (default: 512, as the paper)")
    p.add_argument("--downsample", type=positive_int, default=None,
                   help="area-downsampling factor before cropping (default: 2 for --clean, as the paper; 1 for synthetic)")
    p.add_argument("--n-clean", type=positive_int, default=8,
                   help="synthetic clean images when --clean is not given (default: 8)")
    p.add_argument("--law", choices=("paper", "released-benchmark"), default="paper",
                   help="low-dose law: the paper's 25+Exp(75) or the released script's 25+75*U(0,1)")
    p.add_argument("--no-tune", action="store_true",
                   help="print the paper's fixed-parameter rows only (no tuned Gaussian/median/Wiener/TV rows)")
    p.add_argument("--val", type=positive_int, default=8,
                   help="validation instances for choosing the tuned rows' parameters (default: 8)")
    p.add_argument("--val-clean", type=Path, default=None, metavar="DIR",
                   help="clean TIFFs for the validation instances (default: synthetic lattices of another seed, "
                        "or the --clean frames with their own crops and noise)")
    add_common(p, default_out="emdenoise-bench/ede")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bench ede`` and print its tables."""
    methods = build_methods("ede", args)  # first: a bad method name fails before any work
    if args.clean is not None:
        clean = load_clean_dir(args.clean)
        downsample = args.downsample or 2
    else:
        clean = synthetic_clean_set(args.n_clean, args.crop, args.seed)
        downsample = args.downsample or 1
    tuned, validation, tuned_ms = {}, None, []
    fixed = [m for m in methods if m.kind == "classical"]
    kept = [m.key for m in fixed]
    if not args.no_tune and select_rows(EDE_TUNED, kept):
        if args.val_clean is not None:
            val_clean = load_clean_dir(args.val_clean)
        elif args.clean is None:
            val_clean = synthetic_clean_set(args.n_clean, args.crop, args.seed + VALIDATION_STREAM)
        else:
            val_clean = clean
        val_pairs = validation_pairs(val_clean, args.val, dose=args.dose, crop=args.crop, downsample=downsample,
                                     seed=args.seed, law=args.law)
        tuned = tune_ede_rows(val_pairs, kept)
        tuned_ms = tuned_methods(EDE_TUNED, tuned)
        methods = fixed + tuned_ms + [m for m in methods if m.kind != "classical"]
        validation = {"n": args.val, "clean": val_clean.description,
                      "stream": f"default_rng([{args.seed}, {VALIDATION_STREAM}, i])"}
    raw = run_ede(clean, methods, dose=args.dose, n=args.n, crop=args.crop,
                  downsample=downsample, seed=args.seed, law=args.law)
    rows, body = summarize(methods, raw, args.dose, frozenset(m.name for m in tuned_ms))
    best, versus, tuned_md = None, {}, ""
    found = best_row({r["name"]: r["mse_mean"] for r in rows if r.get("tuned")})
    if found is not None:
        best = {"name": found[0], "mse_mean": found[1]}
        chosen = "; ".join(f"{t['label']}" for t in tuned.values())
        tuned_md = (f"Tuned on {args.val} validation instances ({validation['clean']}; own random stream): {chosen}.\n\n"
                    f"Best tuned classical row (lowest scored mean MSE): {found[0]}, "
                    f"MSE {found[1] * 1e3:.3f}e-3.")
        model_rows = [r for r in rows if r["kind"] == "engine"]
        for r in model_rows:
            versus[r["name"]] = {"mse_mean": r["mse_mean"], "ratio_to_best_tuned": r["mse_mean"] / found[1],
                                 "below_best_tuned": bool(r["mse_mean"] < found[1])}
        if model_rows:
            tuned_md += "\n\n" + markdown_table(
                ["Model", "MSE mean (1e-3)", f"x {found[0]}", "below best tuned"],
                [[n, fmt(v["mse_mean"] * 1e3), fmt(v["ratio_to_best_tuned"], 3), "yes" if v["below_best_tuned"] else "no"]
                 for n, v in versus.items()])
    check = protocol_check(raw["instances"])
    paper_unf = PAPER_TABLE[args.dose]["Unfiltered"][0] * 1e-3
    check["paper_unfiltered_mse"] = paper_unf
    check["implied_paper_clean_intensity"] = paper_unf / check["mean_dose_factor"]
    check_md = (
        f"Protocol check (Unfiltered row): mean clean crop intensity {check['mean_clean_intensity']:.3f}, "
        f"mean s/D^2 {check['mean_dose_factor']:.3e}, predicted unfiltered MSE "
        f"{check['predicted_unfiltered_mse'] * 1e3:.3f}e-3 (paper: {paper_unf * 1e3:.3f}e-3, which at this "
        f"s/D^2 implies a mean clean crop intensity of {check['implied_paper_clean_intensity']:.3f})."
    )
    title = (f"## bench ede: {args.dose} dose, {args.n} instances of {args.crop}x{args.crop} crops, "
             f"law={args.law}, seed {args.seed}\n\nClean set: {clean.description}.")
    used = {**CONVENTIONS, "tuning": TUNING_CONVENTION} if tuned else CONVENTIONS
    conventions = "\n".join(f"- {k}: {v}" for k, v in used.items())
    tuned_part = f"{tuned_md}\n\n" if tuned_md else ""
    markdown = f"{title}\n\n{body}\n\n{tuned_part}{check_md}\n\nConventions:\n{conventions}"

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stem = f"ede-{args.dose}"
    figures = []
    grid_mse = np.linspace(0.0, 1.2e-3, 400)
    for metric, grid, scale, label in (("mse", grid_mse, 1e3, "MSE (1e-3)"), ("ssim", np.linspace(0, 1, 400), 1.0, "SSIM")):
        path = plots.kde_figure(
            out / f"{stem}-kde-{metric}.png",
            {r["name"]: r["per_image"][metric] for r in rows},
            grid=grid, xlabel=label, xscale=scale,
            title=f"{args.dose} dose {metric.upper()} (n={args.n})",
        )
        if path:
            figures.append(path)
    figures.append(plots.montage(out / f"{stem}-mae-maps.png", raw["mae_maps"], clahe=True))
    if raw["example"]:
        figures.append(plots.montage(out / f"{stem}-example.png", raw["example"], shared_range=(0.0, 1.0)))
    result = {
        "protocol": "ede",
        "reference": "seed 001: Ede & Beanland 2019, sec. 3.1, 4.1, Table 1, Fig. 4, Fig. 5",
        "dose": args.dose, "law": args.law, "n": args.n, "crop": args.crop,
        "downsample": downsample, "seed": args.seed, "clean": clean.description,
        "conventions": used, "protocol_check": check,
        "methods": rows, "instances": raw["instances"],
        "figures": [p.name for p in figures],
        "provenance": provenance(),
    }
    if tuned:
        result.update(tuned=tuned, validation=validation, best_tuned=best, models_vs_best_tuned=versus)
    written = write_results(out, stem, result, markdown)
    print(markdown)
    print("\nWrote " + ", ".join(str(p) for p in [*written, *figures]))
    return 0
