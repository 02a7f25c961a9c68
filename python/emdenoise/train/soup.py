"""Weight average of branches of one run (a "model soup", Wortsman et al. 2022) (issue 17, item 5).

Two branches continued from the same carry with different batch seeds
(``sim_denoiser ... --init PARENT/carry.npz --seed 1``) end in the same basin; the
average of their averaged weights is often better than either, at no cost at inference.
The result is a ``carry.npz`` like any other (float16 averaged weights plus counters), so
it is scored, continued and exported (:mod:`emdenoise.train.sim_export`) the same way;
its CPU hours are the parent's plus every branch's own.

``python -m emdenoise.train.soup A/best.npz B/best.npz --parent PARENT.npz --out SOUP/``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.errors import UserError
from emdenoise.train.sim_denoiser import read_carry

#: Settings that must agree for weights to be averaged.
ARCHITECTURE = ("source", "width", "depth")


def average_carries(paths: list[str | Path], out_dir: str | Path, *, parent: str | Path | None = None,
                    validate: bool = True) -> dict[str, Any]:
    """Average the weights of ``paths`` into ``out_dir/carry.npz`` (and ``best.npz``).

    Parameters
    ----------
    paths : list of path
        ``carry.npz``/``best.npz`` files of branches of one run.
    out_dir : path
        Folder of the soup (created); its ``history.jsonl`` gets one line.
    parent : path, optional
        The carry every branch started from: its CPU time is counted once, not per branch.
    validate : bool
        Score the soup and every branch on the run's validation images.

    Returns
    -------
    dict
        The soup's counters, with ``validation`` errors when ``validate``.

    Raises
    ------
    UserError
        Fewer than two carries, or carries of different architectures.
    """
    if len(paths) < 2:
        raise UserError("a soup needs at least two carries of branches of one run.")
    loaded = [read_carry(p) for p in paths]
    configs = [meta["config"] for meta, _ in loaded]
    for key in ARCHITECTURE:
        values = {json.dumps(c.get(key)) for c in configs}
        if len(values) > 1:
            raise UserError(f"the carries differ in {key} ({', '.join(sorted(values))}); only branches of one run "
                            "can be averaged.")
    names = set(loaded[0][1])
    if any(set(weights) != names for _, weights in loaded):
        raise UserError("the carries hold different weights; only branches of one run can be averaged.")
    averaged = {k: np.mean([weights[k] for _, weights in loaded], axis=0) for k in sorted(names)}
    shared = 0.0
    if parent is not None:
        shared = float(read_carry(parent)[0]["cpu_seconds"])
    cpu = sum(float(meta["cpu_seconds"]) for meta, _ in loaded) - shared * (len(loaded) - 1)
    counters: dict[str, Any] = {
        "steps": max(int(meta["steps"]) for meta, _ in loaded),
        "cpu_seconds": cpu,
        "best_error": None,
        "best_step": None,
        "gaussian": loaded[0][0].get("gaussian"),
        "soup": {"of": [str(p) for p in paths], "steps": [int(meta["steps"]) for meta, _ in loaded],
                 "parent": None if parent is None else str(parent)},
    }
    if validate:
        counters["validation"] = _validate(configs[0], [averaged] + [w for _, w in loaded])
        counters["best_error"] = counters["validation"][0]
        counters["best_step"] = counters["steps"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"ema/{k}": v.astype(np.float16) for k, v in averaged.items()}
    arrays["meta"] = np.frombuffer(json.dumps({"config": configs[0], **counters}).encode(), dtype=np.uint8)
    for name in ("carry", "best"):
        np.savez(out / f".{name}.tmp.npz", **arrays)
        os.replace(out / f".{name}.tmp.npz", out / f"{name}.npz")
    if validate:
        reference = (counters.get("gaussian") or {}).get("error")
        record = {"step": counters["steps"], "cpu_hours": round(cpu / 3600, 4), "val_error": round(counters["best_error"], 6),
                  "val_vs_gaussian": round(counters["best_error"] / reference, 5) if reference else None,
                  "soup_of": counters["soup"]["of"], "branch_val_errors": [round(e, 6) for e in counters["validation"][1:]]}
        with (out / "history.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")
    return counters


def _validate(config: dict[str, Any], weight_sets: list[dict[str, np.ndarray]]) -> list[float]:
    """Validation error of each weight set, on the run's own validation images."""
    import torch

    from emdenoise.models.vst_unet import VstUNet
    from emdenoise.train.sim_denoiser import SimTrainConfig, evaluate, make_imager, scored_images

    settings = SimTrainConfig(**{k: v for k, v in config.items() if k in SimTrainConfig.__dataclass_fields__})
    imager = make_imager(settings.source) if settings.validation == "sim" else None
    images = scored_images(settings, imager)
    errors = []
    for weights in weight_sets:
        model = VstUNet(settings.width, settings.depth)
        model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()})
        errors.append(evaluate(model.eval(), images))
    return errors


def main(argv: list[str] | None = None) -> int:
    """``python -m emdenoise.train.soup A.npz B.npz [...] --out DIR [--parent P.npz]``."""
    parser = argparse.ArgumentParser(prog="python -m emdenoise.train.soup", description=__doc__.splitlines()[0])
    parser.add_argument("carries", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--parent", type=Path, help="the carry the branches started from (its CPU time counts once)")
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args(argv)
    counters = average_carries(args.carries, args.out, parent=args.parent, validate=not args.no_validate)
    print(json.dumps({k: v for k, v in counters.items() if k != "gaussian"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
