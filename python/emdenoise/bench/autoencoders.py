"""``emdenoise bench autoencoders``: seed 002's Table 3 for the installed autoencoders and students.

Seed 002 (sec. 2.2, sec. 4, Table 3) reports the MSE of each autoencoder per latent depth
on 160x160 crops whose minimum is subtracted and which are divided by their mean, and the
MSE of each kernel/MLP against the latent-depth-16 autoencoder it imitates. Here every
instance is a random 160x160 crop of a clean image, noised with Ede's law (seed 001, sec.
3.1; :func:`emdenoise.train.ede.noisy_crop`), and all errors are taken after the noisy
crop's min-mean map (sec. 2.2):

* ``vs truth``: the output against the clean crop (what a denoiser is for);
* ``vs input``: the output against the noisy crop itself (Table 3's criterion for the
  autoencoders, which the paper trained to reproduce their inputs);
* ``vs teacher`` (students): the output against the d = 16 autoencoder's (Table 3's
  criterion for kernels and MLPs), scored at least (w - 1) / 2 from the crop edge.

Autoencoders run through :class:`emdenoise.compress.codec.LatentCodec` (what ``compress``
and the Encode/Decode RPCs use); students through the engine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.bench.clean import load_clean_dir, synthetic_clean_set
from emdenoise.bench.report import markdown_table, provenance, stats, write_results
from emdenoise.cli_types import positive_int
from emdenoise.errors import UserError

#: Seed 002, Table 3, TEM column: (mean, std) of the last 500 training batches.
PAPER_TEM = {
    "Autoencoder, Latent Depth 1": (0.026422, 0.000033),
    "Autoencoder, Latent Depth 4": (0.018571, 0.000005),
    "Autoencoder, Latent Depth 16": (0.014360, 0.000004),
    "Autoencoder, Latent Depth 64": (0.013034, 0.000008),
    "Kernel, Input Size 3": (0.010822, 0.000288),
    "Kernel, Input Size 5": (0.009728, 0.000398),
    "Kernel, Input Size 7": (0.008032, 0.000410),
    "Kernel, Input Size 11": (0.008217, 0.000191),
    "MLP, 1 Hidden Layer, Input Size 3": (0.007167, 0.000188),
    "MLP, 1 Hidden Layer, Input Size 5": (0.006934, 0.000128),
    "MLP, 1 Hidden Layer, Input Size 7": (0.005917, 0.000113),
}

CROP = 160


def _row_name(card) -> str:
    spec = card.raw.get("architecture", {}).get("spec", {})
    if card.task == "encode":
        return f"Autoencoder, Latent Depth {int(spec['depth'])}"
    hidden, size = int(spec.get("hidden", 0)), int(spec.get("size", 0))
    if hidden == 0:
        return f"Kernel, Input Size {size}"
    return f"MLP, {hidden} Hidden Layer{'s' if hidden > 1 else ''}, Input Size {size}"


def _teacher_of(card) -> str | None:
    return ((card.raw.get("training") or {}).get("recipe") or {}).get("teacher")


def find_models(engine, teacher: str) -> tuple[list, list]:
    """Installed autoencoders (``ede-ae-*``) and the students distilled from ``teacher``."""
    cards = sorted(engine.repository.cards(), key=lambda c: c.id)
    autoencoders = [c for c in cards if c.task == "encode" and c.raw.get("architecture", {}).get("spec", {}).get("family") == "ede-ae"]
    autoencoders.sort(key=lambda c: int(c.raw["architecture"]["spec"]["depth"]))
    students = [c for c in cards if c.task == "denoise" and _teacher_of(c) == teacher]
    students.sort(key=lambda c: (int(c.raw["architecture"]["spec"].get("hidden", 0)), int(c.raw["architecture"]["spec"].get("size", 0))))
    return autoencoders, students


def run_table3(clean_images: list[np.ndarray], engine, *, teacher: str, n: int, dose: str, seed: int) -> dict[str, Any]:
    """Errors of every autoencoder and student on ``n`` noisy 160x160 crops (seed 002, Table 3).

    Returns
    -------
    dict
        ``rows``: one dict per model (``name``, ``id``, and mean/std of each criterion),
        plus an ``Unfiltered`` row (the noisy crop against the truth).
    """
    from emdenoise.compress.codec import codec_for
    from emdenoise.train.ede import min_mean, noisy_crop

    autoencoders, students = find_models(engine, teacher)
    if not autoencoders:
        raise UserError("no autoencoder models are installed; ship or train ede-ae-* folders first.")
    if teacher not in {c.id for c in autoencoders}:
        raise UserError(f"the teacher {teacher} is not an installed autoencoder; choose one of {', '.join(c.id for c in autoencoders)}.")
    codec = codec_for(engine)
    specs = {c.id: codec.spec(c.id) for c in autoencoders}
    rng = np.random.default_rng([seed, CROP])
    errors: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}

    def record(key: str, criterion: str, value: float) -> None:
        errors.setdefault(key, {}).setdefault(criterion, []).append(value)

    for _ in range(int(n)):
        noisy, truth = noisy_crop(clean_images[int(rng.integers(len(clean_images)))], CROP, dose, rng)
        normed, truth_n = min_mean(noisy, truth)
        record("Unfiltered", "truth", float(np.mean((normed - truth_n) ** 2)))
        outputs = {}
        for card in autoencoders:
            began = time.perf_counter()
            out = codec.decode_frame(codec.encode_frame(noisy, specs[card.id]), specs[card.id])
            seconds[card.id] = seconds.get(card.id, 0.0) + time.perf_counter() - began
            outputs[card.id] = out = min_mean(noisy, out)[1]
            record(card.id, "truth", float(np.mean((out - truth_n) ** 2)))
            record(card.id, "input", float(np.mean((out - normed) ** 2)))
        for card in students:
            margin = (int(card.raw["architecture"]["spec"].get("size", 1)) - 1) // 2
            inner = (slice(margin, CROP - margin),) * 2
            began = time.perf_counter()
            out = min_mean(noisy, engine.denoise_frame(noisy, card))[1]
            seconds[card.id] = seconds.get(card.id, 0.0) + time.perf_counter() - began
            record(card.id, "truth", float(np.mean((out[inner] - truth_n[inner]) ** 2)))
            record(card.id, "teacher", float(np.mean((out[inner] - outputs[teacher][inner]) ** 2)))
    rows = []
    for key, card in [("Unfiltered", None), *[(c.id, c) for c in [*autoencoders, *students]]]:
        row: dict[str, Any] = {"name": "Unfiltered" if card is None else _row_name(card), "id": key}
        for criterion, values in errors[key].items():
            row[f"{criterion}_mean"], row[f"{criterion}_std"] = stats(values)
        if card is not None:
            row["seconds_per_megapixel"] = seconds[key] / (n * CROP * CROP / 1e6)
            row["paper_tem"] = PAPER_TEM.get(row["name"])
        rows.append(row)
    return {"rows": rows, "n": int(n), "dose": dose, "teacher": teacher}


def table3_markdown(result: dict[str, Any]) -> str:
    """Seed 002 Table 3 layout: one row per model, mean and std of each criterion."""
    def cell(row, key):
        return "-" if f"{key}_mean" not in row else f"{row[f'{key}_mean']:.6f} ± {row[f'{key}_std']:.6f}"

    rows = [[r["name"], r["id"], cell(r, "truth"), cell(r, "input"), cell(r, "teacher"),
             "-" if not r.get("paper_tem") else f"{r['paper_tem'][0]:.6f} ± {r['paper_tem'][1]:.6f}",
             "-" if "seconds_per_megapixel" not in r else f"{r['seconds_per_megapixel']:.3f}"]
            for r in result["rows"]]
    return markdown_table(["Model", "id", "MSE vs truth", "MSE vs input", f"MSE vs {result['teacher']}",
                           "paper TEM (Table 3)", "s / megapixel"], rows)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench autoencoders``."""
    p = subparsers.add_parser(
        "autoencoders",
        help="seed 002 Table 3: autoencoder error per latent depth, kernels/MLPs against their autoencoder",
        description="MSEs of the installed ede-ae-* autoencoders and of the kernels/MLPs distilled from one, "
                    "on min-mean normalised 160x160 noisy crops (seed 002, sec. 2.2 and Table 3).",
    )
    p.add_argument("--clean", type=Path, default=None, metavar="DIR",
                   help="clean images: 'emdenoise simulate tem-corpus' output or TIFFs (default: synthetic lattices)")
    p.add_argument("--dose", choices=("low", "ordinary"), default="ordinary", help="Ede's dose law (default: ordinary)")
    p.add_argument("--n", type=positive_int, default=64, help="noise instances (default: 64)")
    p.add_argument("--teacher", default="ede-ae-d16", help="the autoencoder the students imitate (default: ede-ae-d16)")
    p.add_argument("--out", type=Path, default=Path("emdenoise-bench/autoencoders"), help="folder for JSON and Markdown")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bench autoencoders`` and print the table."""
    from emdenoise.engine import Engine

    clean = load_clean_dir(args.clean) if args.clean is not None else synthetic_clean_set(8, 256, args.seed)
    images = [c.image for c in clean.images if min(c.image.shape) >= CROP]
    if not images:
        raise UserError(f"no clean image is at least {CROP}x{CROP}; give larger images with --clean.")
    result = run_table3(images, Engine(device="cpu"), teacher=args.teacher, n=args.n, dose=args.dose, seed=args.seed)
    result.update({"protocol": "seed 002, sec. 2.2 and Table 3", "clean": clean.description, "seed": args.seed,
                   "provenance": provenance()})
    markdown = (f"## bench autoencoders: {args.n} noisy 160x160 crops, {args.dose} dose, seed {args.seed}\n\n"
                f"Clean set: {clean.description}. Errors after the noisy crop's min-mean map (seed 002, sec. 2.2).\n\n"
                + table3_markdown(result))
    args.out.mkdir(parents=True, exist_ok=True)
    written = write_results(args.out, f"autoencoders-{args.dose}", result, markdown)
    print(markdown)
    print("\nWrote " + ", ".join(str(p) for p in written))
    return 0
