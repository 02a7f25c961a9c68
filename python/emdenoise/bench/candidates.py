"""``emdenoise bench candidates``: accuracy per CPU-second of networks trained by one recipe (issue 17, item 4).

Each candidate is a run folder of :mod:`emdenoise.train.sim_denoiser` (``history.jsonl``
and ``carry.npz``) trained by the same recipe from scratch, on one thread. For each it
prints the validation error (relative to the tuned Gaussian of the same validation set,
the cross-domain split for HRTEM) reached at equal training budgets in CPU hours,
interpolated on its curve, and what it costs to serve: parameters and the CPU seconds per
megapixel of one whole-frame forward pass, timed in this run on one thread. A candidate
that had not reached a budget shows a dash there instead of an extrapolation.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.bench.training_log import read_history


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("candidates", help="validation error at equal CPU budgets and serving cost of candidate networks")
    p.add_argument("runs", nargs="+", type=Path, help="run folders (history.jsonl and carry.npz), one per candidate")
    p.add_argument("--budgets", default="0.05,0.1,0.2,0.3",
                   help="training budgets in CPU hours, comma-separated (default 0.05,0.1,0.2,0.3)")
    p.add_argument("--side", type=int, default=512, help="frame side of the timed forward pass (default 512)")
    p.add_argument("--out", type=Path, required=True, help="folder for candidates.md and candidates.json")
    p.set_defaults(func=run)


def at_budget(history: list[dict[str, Any]], hours: float) -> float | None:
    """Validation error / tuned Gaussian at ``hours`` CPU hours, linear between records (None beyond the run)."""
    points = [(r["cpu_hours"], r["val_vs_gaussian"]) for r in history]
    if not points or hours > points[-1][0] or hours < points[0][0]:
        return None
    xs, ys = zip(*points)
    return float(np.interp(hours, xs, ys))


def seconds_per_megapixel(model, side: int, repeats: int = 3) -> float:
    """Best of ``repeats`` CPU seconds of one forward pass over a ``side`` x ``side`` frame, per megapixel."""
    import torch

    from emdenoise.train.sim_denoiser import restore_whole

    torch.set_num_threads(1)
    frame = np.random.default_rng(0).poisson(2.0, (side, side)).astype(np.float32)
    restore_whole(model, frame)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        restore_whole(model, frame)
        best = min(best, time.process_time() - start)
    return best / (side * side / 1e6)


def candidate_row(run: Path, budgets: list[float], side: int) -> dict[str, Any]:
    """One candidate's figures (see the module docstring)."""
    from emdenoise.train.sim_denoiser import model_from_carry

    history = read_history(run)
    model, meta = model_from_carry(run / "carry.npz")
    config = meta["config"]
    best = min(history, key=lambda r: r["val_vs_gaussian"])
    return {"run": run.name, "width": config["width"], "depth": config.get("depth", 3),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "steps": history[-1]["step"], "cpu_hours": history[-1]["cpu_hours"],
            "at_budget": {str(b): at_budget(history, b) for b in budgets},
            "best": best["val_vs_gaussian"], "best_cpu_hours": best["cpu_hours"],
            "seconds_per_mp": seconds_per_megapixel(model, side)}


def markdown(rows: list[dict[str, Any]], budgets: list[float], side: int) -> str:
    """The table of ``rows`` (validation error / tuned Gaussian at each budget; serving cost)."""
    head = " | ".join(f"at {b:g} CPU h" for b in budgets)
    lines = [f"| run | width | depth | parameters | {head} | best (at CPU h) | CPU s/MP ({side}^2, 1 thread) |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in budgets) + " | ---: | ---: |"]
    for row in rows:
        cells = " | ".join("-" if row["at_budget"][str(b)] is None else f"{row['at_budget'][str(b)]:.3f}" for b in budgets)
        lines.append(f"| {row['run']} | {row['width']} | {row['depth']} | {row['parameters']:,} | {cells} | "
                     f"{row['best']:.3f} ({row['best_cpu_hours']:.2f}) | {row['seconds_per_mp']:.2f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from emdenoise.errors import UserError

    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--budgets {args.budgets!r} must be CPU hours separated by commas, e.g. 0.1,0.2.") from None
    for folder in args.runs:
        if not (folder / "carry.npz").is_file():
            raise UserError(f"{folder} has no carry.npz; give the --out folder of a sim_denoiser run.")
    rows = [candidate_row(folder, budgets, args.side) for folder in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    text = ("## bench candidates: validation error / tuned Gaussian at equal training budgets\n\n"
            + markdown(rows, budgets, args.side))
    (args.out / "candidates.md").write_text(text, encoding="utf-8")
    (args.out / "candidates.json").write_text(json.dumps({"budgets": budgets, "side": args.side, "rows": rows}, indent=1),
                                              encoding="utf-8")
    print(text)
    print(f"Wrote {args.out / 'candidates.md'}, {args.out / 'candidates.json'}")
    return 0
