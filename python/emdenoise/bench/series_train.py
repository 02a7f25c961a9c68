"""``bench series --train PRESET``: train a Noise2Atom model on the benchmarked series first.

Seed 004 trains on the very series it restores, so the benchmark does the same: the stack
(in counts) goes to a training job (:class:`emdenoise.jobs.TrainingJobs`, a worker process
with torch), the finished model is registered in ``<out>/models`` (never in the user
model folder) and joins the table as one more engine method. The training's wall time,
steps and the held-out CSS/paired-error history go into the result JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.cli_types import key_value_settings
from emdenoise.errors import UserError


def add_train_arguments(parser) -> None:
    """Options of the series-trained method."""
    parser.add_argument("--train", metavar="PRESET", choices=("cpu", "paper", "tiny"),
                        help="first train a Noise2Atom model on this stack (seed 004) and add it as a method")
    parser.add_argument("--train-minutes", type=float, default=None, help="wall-time limit of that training")
    parser.add_argument("--train-steps", type=int, default=None, help="generator steps of that training")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="other Noise2AtomConfig fields of that training (repeatable)")
    parser.add_argument("--models", type=Path, action="append", default=[], metavar="DIR",
                        help="extra model folder for --method (e.g. the models/ of an earlier --train run)")


def _settings(args) -> dict[str, Any]:
    settings: dict[str, Any] = key_value_settings(args.train_set, "--train-set", "lr=1e-4")
    if args.train_steps is not None:
        settings["steps"] = args.train_steps
    if args.train_minutes is not None:
        settings["max_seconds"] = 60.0 * args.train_minutes
    return settings


def train_on_stack(counts: np.ndarray, args, *, name: str) -> dict[str, Any]:
    """Train on ``counts`` (already in counts: gain 1, offset 0); returns the model id and facts."""
    from emdenoise.jobs import TrainingJobs

    out: Path = args.out
    model_id = f"n2a-bench-{time.strftime('%Y%m%d%H%M%S')}"
    manager = TrainingJobs(out / "models", root=out / "jobs")
    started = time.monotonic()
    settings = _settings(args)
    job = manager.start(list(counts), model_id, gain=1.0, offset=0.0, preset=args.train,
                        settings=settings, series_name=name)
    final: dict[str, Any] = {}
    for event in manager.watch(job.id):
        if event.get("kind") == "progress" and event.get("css") is not None:
            losses = event["losses"]
            print(f"train {event['step']}/{event['total_steps']}: critic {losses['critic']:.3g} gan {losses['gan']:.3g} "
                  f"cycle {losses['cycle']:.3g} lfc {losses['lfc']:.3g} | held-out CSS {event['css']:.4f} "
                  f"paired MSE {event['paired_mse']:.4g} thinned MSE {event['thinned_mse']:.4g} | {event['elapsed']:.0f} s", file=sys.stderr, flush=True)
        elif event.get("kind") == "state":
            final = event
    if final.get("state") != "done":
        raise UserError(f"the benchmark's training failed: {final.get('message', 'no message')}")
    card = json.loads((out / "models" / model_id / "card.json").read_text(encoding="utf-8"))
    training = card["training"]
    return {
        "model_id": model_id, "preset": args.train, "settings": settings,
        "wall_seconds_training": training["wall_seconds"], "wall_seconds_job": round(time.monotonic() - started, 1),
        "steps_run": training["steps_run"], "checkpoint_step": training["checkpoint_step"],
        "stopped": training["stopped"], "device": training.get("device", "cpu"), "config": training["config"], "history": training["history"],
        "models_dir": str(out / "models"),
    }


def engine_for(args, extra: list[Path]):
    """An engine over the bundled, user and extra model folders (None when none are extra)."""
    folders = [*args.models, *extra]
    if not folders:
        return None
    from emdenoise.engine import Engine
    from emdenoise.engine.repository import bundled_models_dir, user_models_dir

    return Engine([bundled_models_dir(), user_models_dir(), *folders], device="cpu")
