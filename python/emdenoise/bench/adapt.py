"""``emdenoise bench adapt``: the adapted models of issue 18 against tuned Gaussians, on real frames.

With ``--pair FILE`` (two frames of one field, e.g. the SerialEM HAADF pair of
``../shared/data``), in counts from the project's own gain/offset estimate:

* the left halves of both frames are what ``adapt`` and ``classical-auto`` may look at;
  the right halves are only scored, by the unbiased paired error both ways
  (:func:`emdenoise.adapt.scores.paired_error`);
* **oracle Gaussian**: the sigma best *on the right halves* (labelled as an oracle);
* **classical-auto**: Gaussian / VST + NLM chosen on the left halves only, and the served
  ``classical-auto`` model, whose frames each choose their sigma;
* **adapt, pair**: trained on the left halves of both frames;
* **adapt, single frame**: trained on the left half of frame 1 alone (no partner), so a
  frame's own data are all it had;
* with ``--from MODEL`` every adapt run starts from that model, which also gets a row as
  shipped.

The adapted models run as the engine serves them (ONNX Runtime, tiled). Each row gives its
error and its ratio to the oracle Gaussian. ``--single FILE`` adapts on a lone frame and
prints the no-truth scores its card records, next to ``classical-auto``'s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adapt", help="adapt (issue 18) against tuned and oracle Gaussians on real frames")
    p.add_argument("--pair", type=Path, help="a file with two frames of one field (left halves train, right halves score)")
    p.add_argument("--single", type=Path, action="append", default=[], metavar="FILE",
                   help="a lone frame to adapt on and score by the no-truth criterion (repeatable)")
    p.add_argument("--minutes", type=float, default=10.0, help="training time of each adapt run (default 10)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="adapt settings (repeatable)")
    p.add_argument("--from", dest="from_model", metavar="MODEL",
                   help="start every adapt run from this model (e.g. sim-vstunet32-stem-r2); the model as shipped "
                        "gets its own row")
    p.add_argument("--runs", default="pair,single", help="with --pair: the adapt runs, of pair and single "
                   "(default both; 'none' scores the classical rows only)")
    p.add_argument("--out", type=Path, required=True, help="folder for models, jobs and adapt.json / adapt.md")
    p.set_defaults(func=run)


def _adapt(frames: list[np.ndarray], name: str, out: Path, settings: dict[str, Any], *, gain=None, offset=None,
           label: str) -> dict[str, Any]:
    """Run one adapt job to the end (its worker is a process of this one); returns its card."""
    from emdenoise.commands.train_series import format_event
    from emdenoise.jobs import TrainingJobs

    manager = TrainingJobs(out / "models", root=out / "jobs")
    job = manager.start_adapt(frames, name, gain=gain, offset=offset, settings=settings, sources=[label])
    final: dict[str, Any] = {}
    for event in manager.watch(job.id):
        if event.get("kind") == "state" and event.get("state") in ("done", "failed", "cancelled"):
            final = event
        elif event.get("held_out_mse") is not None or event.get("kind") == "status":
            print(f"  [{name}] {format_event(event)}", file=sys.stderr, flush=True)
    if final.get("state") != "done":
        raise UserError(f"adapt {name} failed: {final.get('message', 'no message')}")
    return json.loads((out / "models" / name / "card.json").read_text(encoding="utf-8"))


def _served(model_id: str, out: Path):
    """``counts -> counts`` through the engine, as ``emdenoise denoise --model`` runs it."""
    from emdenoise.engine import Engine
    from emdenoise.engine.repository import bundled_models_dir

    engine = Engine([bundled_models_dir(), out / "models"], device="cpu")
    card = engine.repository.get(model_id)
    return lambda image: engine.denoise_frame(np.asarray(image, np.float32), card, gain=1.0, offset=0.0)


def pair_rows(path: Path, out: Path, settings: dict[str, Any], *, runs: set[str]) -> dict[str, Any]:
    """The rows of the real-pair benchmark (see the module docstring)."""
    from emdenoise.adapt import classical, scores
    from emdenoise.noise.calibration import estimate_counts
    from emdenoise.train.series_checks import read_series_file
    from emdenoise.tuning import GAUSSIAN_SIGMAS, tune

    raw = np.stack(read_series_file(path)[:2]).astype(np.float32)
    if len(raw) < 2:
        raise UserError(f"{path} holds one frame; --pair needs two frames of one field.")
    fit = estimate_counts(raw)
    counts = fit.to_counts(raw)
    half = counts.shape[2] // 2
    left, right = counts[:, :, :half], counts[:, :, half:]

    def on_right(restore) -> float:
        return scores.paired_error(restore, right[0], right[1])

    oracle = tune(GAUSSIAN_SIGMAS, lambda s: on_right(classical.restorer("gaussian", s)))
    rows = [{"method": f"Gaussian sigma {oracle.value:g} px (oracle: best on the scored right halves)",
             "error": oracle.score}]
    unfiltered = on_right(lambda image: image)
    rows.append({"method": "Unfiltered", "error": unfiltered})
    started = time.monotonic()
    auto = classical.choose(lambda f: scores.paired_error(f, left[0], left[1]))
    rows.append({"method": f"classical-auto ({auto.label}, chosen on the left halves)", "error": on_right(auto.restore),
                 "seconds": round(time.monotonic() - started, 1)})
    rows.append({"method": "classical-auto as served (sigma chosen per frame by the blind-spot error)",
                 "error": on_right(classical.gaussian_auto)})
    prior = settings.get("from_model")
    if prior:
        rows.append({"method": f"{prior} as shipped (the starting point, not adapted)", "error": on_right(_served(prior, out)),
                     "model": prior})
    stamp = time.strftime("%Y%m%d%H%M%S")
    planned = {"pair": ([left[0], left[1]], "left halves of both frames"), "single": ([left[0]], "left half of frame 1 alone")}
    for kind, (frames, what) in planned.items():
        if kind not in runs:
            continue
        name = f"adapt-bench-{kind}-{stamp}"
        started = time.monotonic()
        card = _adapt(frames, name, out, settings, gain=1.0, offset=0.0, label=f"{path.name} ({what})")
        restore = _served(name, out)
        rows.append({"method": f"adapt {card['training']['method']} ({what}; {card['training']['wall_seconds']:.0f} s, "
                               f"{card['training']['steps_run']} steps)",
                     "error": on_right(restore), "model": name, "seconds": round(time.monotonic() - started, 1),
                     "held_out_no_truth": card["metrics"]["held_out_no_truth"]})
    for row in rows:
        row["ratio_to_oracle"] = row["error"] / oracle.score
    return {"file": str(path), "gain": fit.gain, "offset": fit.offset, "dose": float(counts.mean()),
            "calibration": f"estimated ({fit.method}, {fit.quality})", "scored_on": "right halves, both directions",
            "oracle_sigma": oracle.value, "rows": rows}


def single_rows(path: Path, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Adapt on one lone frame; its card's no-truth scores next to classical-auto's."""
    from emdenoise.train.series_checks import read_series_file

    frames = read_series_file(path)[:1]
    name = f"adapt-bench-lone-{time.strftime('%Y%m%d%H%M%S')}"
    card = _adapt(frames, name, out, settings, label=path.name)
    scores_ = card["metrics"]["held_out_no_truth"]
    return {"file": str(path), "model": name, "method": card["training"]["method"], "criterion": scores_["criterion"],
            "adapted": scores_["adapted"], "classical_auto": scores_["classical_auto"]["error"],
            "classical_auto_method": scores_["classical_auto"]["method"],
            "ratio": scores_["adapted"] / scores_["classical_auto"]["error"],
            "dose": card["training_data"]["dose_counts_per_px"], "wall_seconds": card["training"]["wall_seconds"]}


def markdown(result: dict[str, Any]) -> str:
    """The tables of ``adapt.md``."""
    lines = ["# bench adapt", ""]
    pair = result.get("pair")
    if pair:
        lines += [f"Pair: `{pair['file']}`, gain {pair['gain']:.4g}, offset {pair['offset']:.6g} ({pair['calibration']}), "
                  f"{pair['dose']:.3g} counts/px; unbiased paired error on the {pair['scored_on']} [counts^2].", "",
                  "| Method | paired error | / oracle Gaussian |", "| --- | ---: | ---: |"]
        lines += [f"| {row['method']} | {row['error']:.4f} | {row['ratio_to_oracle']:.3f} |" for row in pair["rows"]]
        lines.append("")
    for lone in result.get("single", []):
        lines += [f"Lone frame `{lone['file']}` ({lone['dose']:.3g} counts/px), {lone['method']}, {lone['criterion']} on "
                  f"held-out rows: adapted {lone['adapted']:.4f}, classical-auto ({lone['classical_auto_method']}) "
                  f"{lone['classical_auto']:.4f}, ratio {lone['ratio']:.3f}.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from emdenoise.cli_types import key_value_settings

    if not args.pair and not args.single:
        raise UserError("give --pair FILE (two frames of one field) and/or --single FILE.")
    settings = key_value_settings(args.set, "--set", "width=32")
    settings["max_seconds"] = 60.0 * args.minutes
    if args.from_model:
        settings["from_model"] = args.from_model
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"minutes": args.minutes, "settings": settings}
    if args.pair:
        runs = {item.strip() for item in args.runs.split(",")} - {"none", ""}
        if runs - {"pair", "single"}:
            raise UserError(f"--runs takes pair, single or none, not {args.runs!r}.")
        result["pair"] = pair_rows(args.pair, args.out, settings, runs=runs)
    result["single"] = [single_rows(path, args.out, settings) for path in args.single]
    (args.out / "adapt.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = markdown(result)
    (args.out / "adapt.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
