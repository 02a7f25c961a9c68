"""Resumable training checkpoints: ``last.pt`` after every validation, ``best.pt`` when it improves.

A checkpoint holds the recipe, the model, optimiser and scheduler states, the step
reached and the history, so ``emdenoise train RECIPE --out DIR`` continues where an
interrupted run stopped. Batches are drawn from ``default_rng([seed, step])``, so a
resumed run sees the same data as an uninterrupted one. Files are written atomically
and load with ``weights_only=True`` (plain tensors and Python values only).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from emdenoise.output_dirs import generated_data_dir
from emdenoise.errors import UserError

LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (a crash never leaves half a checkpoint)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    UserError
        When the file is missing or is not an emdenoise checkpoint.
    """
    import torch

    path = Path(path)
    if path.is_dir() and (path / "card.json").is_file():
        return checkpoint_from_model_folder(path)
    if path.is_dir():
        path = path / BEST if (path / BEST).is_file() else path / LAST
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; give a best.pt/last.pt file or the --out folder of 'emdenoise train'.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or damaged files
        raise UserError(f"{path} is not a readable checkpoint ({type(error).__name__}); retrain or pick another file.") from None
    if not isinstance(state, dict) or "recipe" not in state or "model" not in state:
        raise UserError(f"{path} is not an emdenoise checkpoint; give one written by 'emdenoise train'.")
    return state


def checkpoint_from_model_folder(folder: str | Path) -> dict[str, Any]:
    """A checkpoint-like state from an exported model folder (``card.json`` + its PyTorch weights).

    Lets ``--init`` start from a shipped model, as seed 001 (sec. 3.2) fine-tunes its
    low-dose network at ordinary doses. Only the weights, the recipe and the step count
    come back: optimiser state is not exported.
    """
    import json

    import numpy as np
    import torch

    folder = Path(folder)
    try:
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        training = card["training"]
        weights = (card.get("torch_state") or card.get("torch_weights"))["file"]
        with np.load(folder / weights, allow_pickle=False) as arrays:
            model = {name: torch.from_numpy(np.array(arrays[name])) for name in arrays.files}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{folder} is not a model folder with PyTorch weights ({type(error).__name__}: {error}); "
                        "give a checkpoint or a folder exported by 'emdenoise export'.") from None
    history = [{"step": step, "loss": loss, "val_mse": val} for step, loss, val in training.get("history_step_mse_valmse", [])]
    return {"recipe": training["recipe"], "model": model, "step": int(training.get("steps_run", 0)),
            "seconds": float(training.get("wall_seconds", 0.0)), "history": history, "model_id": card.get("id")}


def check_out_dir(out: str | Path) -> Path:
    """Refuse to write checkpoints inside the source repository (they belong in /tmp or a data disk)."""
    return generated_data_dir(out, what="checkpoints")
