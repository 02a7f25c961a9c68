"""Where a training run starts and what it produced, shared by every training loop.

:mod:`emdenoise.train.loop` (SBD recipes, distillation) and :mod:`emdenoise.train.ede`
(Ede's recipes) both resume from ``last.pt``, start from another model's weights and
return a :class:`TrainResult`; the loop dispatches ``ede-*`` recipes to ``train.ede``,
so these live here and ``train.ede`` never imports the loop back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emdenoise.errors import UserError
from emdenoise.train import checkpoints
from emdenoise.train.recipes import Recipe

#: Recipe fields that may change when a run is resumed.
RESUMABLE_CHANGES = ("steps", "early_stop", "val_every")


@dataclass
class TrainResult:
    """What a run produced."""

    recipe: Recipe
    step: int
    best_step: int
    best_score: float
    stopped: str
    seconds: float
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def best(self) -> Path:
        return self.out_dir / checkpoints.BEST


def _same_recipe(saved: dict[str, Any], recipe: Recipe) -> list[str]:
    now = recipe.as_dict()
    return sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])


@dataclass
class StartState:
    """Where a run starts: step 0, a resumed ``last.pt`` or another model's weights."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    since_best: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    origin: dict[str, Any] | None = None


def restore(model, optimizer, scheduler, recipe: Recipe, out_dir: Path, *, resume: bool, init, log) -> StartState:
    """Resume from ``out_dir/last.pt`` (same recipe only), or load ``init``'s weights, or start afresh.

    ``init`` is a checkpoint or an exported model folder of the same architecture; the run
    then keeps its origin (step, time, recipe, history) for the card.
    """
    last_path = Path(out_dir) / checkpoints.LAST
    if resume and last_path.is_file():
        state = checkpoints.load_checkpoint(last_path)
        changed = _same_recipe(state["recipe"], recipe)
        if changed:
            raise UserError(f"{last_path} was trained with a different {', '.join(changed)}; use a new --out folder or --no-resume.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        log(f"resuming {recipe.name} from step {state['step']}")
        return StartState(state["step"], state["best_score"], state["best_step"], state.get("since_best", 0),
                          state["history"], state["losses"], state["seconds"], state.get("init"))
    if init is not None:
        source = checkpoints.load_checkpoint(init)
        if source["recipe"]["model"] != recipe.model:
            raise UserError(f"{init} holds a {source['recipe']['model']} model, not {recipe.model}; initialise from the same architecture.")
        model.load_state_dict(source["model"])
        log(f"initialised from {init} (step {source['step']})")
        return StartState(origin={"checkpoint": str(init), "step": int(source["step"]), "seconds": float(source["seconds"]),
                                  "recipe": source["recipe"], "history": source["history"]})
    return StartState()


__all__ = ["RESUMABLE_CHANGES", "StartState", "TrainResult", "restore"]
