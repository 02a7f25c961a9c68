"""``emdenoise bench training-log``: validation error against CPU hours of accumulating runs (issue 17, item 5).

Reads the ``history.jsonl`` of one or more sim-trained runs (:mod:`emdenoise.train.sim_denoiser`)
and writes a Markdown table and a plot of the validation error (relative to the raw frame's,
and to the tuned Gaussian of the same validation set) against cumulative CPU hours, so a
reader sees whether a curve has flattened.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("training-log", help="validation error against CPU hours of sim-trained runs")
    p.add_argument("runs", nargs="+", type=Path, help="run folders (with history.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="folder for training-log.md and training-log.png")
    p.add_argument("--every", type=int, default=1, help="keep every Nth row in the table (default all)")
    p.set_defaults(func=run)


def read_history(run: Path) -> list[dict[str, Any]]:
    """The validation records of a run, in order."""
    path = run / "history.jsonl"
    if not path.is_file():
        from emdenoise.errors import UserError

        raise UserError(f"{run} has no history.jsonl; give the --out folder of a sim_denoiser run.")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["# Training log", "",
             "Validation error of the averaged weights on the run's fixed simulated validation set, as a fraction of "
             "the raw frame's error (`val_error`) and of the Gaussian tuned on the same set (`/ Gaussian`).", ""]
    curves = {}
    for folder in args.runs:
        history = read_history(folder)
        curves[folder.name] = history
        lines += [f"## {folder.name}", "", "| step | CPU h | val_error | / Gaussian | lr |", "| ---: | ---: | ---: | ---: | ---: |"]
        shown = history[:: max(args.every, 1)]
        if history and shown[-1] is not history[-1]:
            shown.append(history[-1])
        lines += [f"| {r['step']} | {r['cpu_hours']:.3f} | {r['val_error']:.4f} | {r['val_vs_gaussian']:.3f} | {r['lr']:g} |"
                  for r in shown]
        lines.append("")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6, 4))
        for name, history in curves.items():
            axis.plot([r["cpu_hours"] for r in history], [r["val_vs_gaussian"] for r in history], marker=".", label=name)
        axis.axhline(1.0, color="grey", lw=0.8, ls="--")
        axis.set_yscale("log")  # curves span orders of magnitude (and a diverged run more)
        axis.set_xlabel("cumulative CPU hours")
        axis.set_ylabel("validation error / tuned Gaussian")
        axis.legend()
        figure.tight_layout()
        figure.savefig(args.out / "training-log.png", dpi=100)
        lines += ["![validation error against CPU hours](training-log.png)", ""]
    except ImportError:
        lines += ["(matplotlib is not installed: no plot; `pip install emdenoise[bench]`.)", ""]
    (args.out / "training-log.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0
