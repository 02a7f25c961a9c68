"""Training for Ede's encoder-decoder (seed 001, sec. 3) and autoencoders (seed 002, sec. 2.2).

Both learn from clean crops noised with Ede's Poisson law (:mod:`emdenoise.noise.ede`):
a crop is cut at a random position, turned by one of the 8 flips/rotations, mapped to
[0, 1], multiplied by the dose scale ``s`` (low: ``25 + Exp(75)``; ordinary: ``U(200,
2500)``) and Poisson sampled; a fresh draw at every step.

* ``ede-denoise`` (seed 001, sec. 3.2): input the min-max noisy crop, target the truth
  rescaled to its mean; loss ``huber(1000 * MSE)``; Adam with beta1 = 0.5 and an L2
  penalty of 5e-5; the learning rate stepped down (x0.5 at 1/2 and 3/4 of the steps);
  batch-norm statistics frozen for the last ``freeze_bn`` fraction of the steps.
* ``ede-autoencode`` (seed 002, sec. 2.2): noisy crop and target both mapped with the
  noisy crop's min-mean normalisation (subtract the minimum, divide by the mean; the
  engine inverts it); loss ``huber(MSE)``; Adam, lr 0.01 stepped down quadratically,
  ``(1 - step/steps)^2``, at 12 evenly spaced steps (the paper: every 5000 of 60000).

``huber(x)`` is ``x`` below 1 and ``sqrt(x)`` above (seed 002, eq. 1; seed 001 sec. 3.2).
Clean images are a simulated general-TEM corpus (``emdenoise simulate tem-corpus``) or,
for smoke runs, synthetic lattices.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emdenoise.errors import UserError
from emdenoise.noise.ede import dihedral, ede_noisy_pair, sample_dose_scale, scale_to_unit
from emdenoise.train import checkpoints
from emdenoise.train.data import TRAIN_STREAM, VALIDATION_STREAM, CleanPool
from emdenoise.train.recipes import Recipe
from emdenoise.train.run_state import TrainResult, restore

TASKS = ("ede-denoise", "ede-autoencode")


def huberised(mse):
    """Seed 002, eq. 1: ``mse`` below 1, ``sqrt(mse)`` from 1 up (torch tensors)."""
    import torch

    return torch.where(mse < 1.0, mse, torch.sqrt(mse.clamp(min=1.0)))


def clean_pool(data: dict[str, Any], *, role: str, seed: int) -> CleanPool:
    """Clean images for the Ede recipes.

    ``data`` is ``{"source": "corpus", "path": DIR, "n_val": k}`` (the first ``k`` images
    validate, the rest train) or ``{"source": "lattice", "n_train", "n_val", "size"}``.
    """
    n_val = int(data.get("n_val", 2))
    if data["source"] in ("corpus", "shards"):  # "shards": what `emdenoise train --data DIR` passes
        from emdenoise.simulate import load_shards

        try:
            images = [np.asarray(clean, np.float32) for clean, _noisy, _ in load_shards(data["path"])]
        except FileNotFoundError:
            raise UserError(f"{data['path']} is not a simulated data set; run 'emdenoise simulate tem-corpus --out DIR' first.") from None
        if len(images) <= n_val:
            raise UserError(f"{data['path']} holds {len(images)} images; it needs more than the {n_val} that validate.")
        chosen = images[:n_val] if role == "val" else images[n_val:]
        first = 0 if role == "val" else n_val
        return CleanPool(chosen, f"{len(chosen)} simulated general-TEM images from {data['path']} (items {first}..{first + len(chosen) - 1})", 1.0)
    if data["source"] == "lattice":
        from emdenoise.bench.lattice import synthetic_lattice

        n = int(data["n_train"]) if role == "train" else n_val
        stream = TRAIN_STREAM if role == "train" else VALIDATION_STREAM
        images = [synthetic_lattice(int(data["size"]), np.random.default_rng([seed, stream, i])).image.astype(np.float32)
                  for i in range(n)]
        return CleanPool(images, f"{n} synthetic {data['size']}x{data['size']} lattices (seed streams [{seed}, {stream}, i])", 1.0)
    raise UserError(f"unknown data source {data['source']!r}; use 'corpus' or 'lattice'.")


def min_mean(noisy: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Seed 002, sec. 2.2: subtract the noisy crop's minimum and divide by the mean of the result."""
    low = float(noisy.min())
    scale = float(noisy.mean()) - low
    scale = scale if scale > 0 else 1.0
    return [((a - low) / scale).astype(np.float32) for a in (noisy, *others)]


def noisy_crop(image: np.ndarray, patch: int, dose: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (noisy, truth) pair from a random crop (seed 001, sec. 3.1)."""
    h, w = image.shape
    if h < patch or w < patch:
        raise UserError(f"training images of {h}x{w} are smaller than the {patch} px patch; choose a smaller --patch.")
    y, x = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
    crop = scale_to_unit(dihedral(image[y:y + patch, x:x + patch], int(rng.integers(8))))
    pair = ede_noisy_pair(crop, sample_dose_scale(dose, rng), rng)
    return pair.noisy, pair.truth


def make_batch(pool: CleanPool, recipe: Recipe, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``recipe.batch`` pairs, (B, 1, patch, patch), normalised as the task says."""
    noisy, truth = [], []
    for _ in range(recipe.batch):
        n, t = noisy_crop(pool.images[int(rng.integers(len(pool)))], recipe.patch, recipe.data.get("dose", "low"), rng)
        if recipe.task == "ede-autoencode":
            n, t = min_mean(n, t)
        noisy.append(n)
        truth.append(t)
    return np.stack(noisy)[:, None], np.stack(truth)[:, None]


def validation_set(pool: CleanPool, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation pairs: 4 crops per validation image, the same at every evaluation."""
    rng = np.random.default_rng([recipe.seed, VALIDATION_STREAM, 1])
    pairs = [make_batch(CleanPool([image], "", 1.0), dataclass_replace(recipe, batch=4), rng) for image in pool.images]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def dataclass_replace(recipe: Recipe, **changes: Any) -> Recipe:
    import dataclasses

    return dataclasses.replace(recipe, **changes)


def _lr_factor(recipe: Recipe, step: int) -> float:
    if recipe.schedule == "stepped":  # seed 001, sec. 3.2
        return 0.5 ** ((step >= recipe.steps // 2) + (step >= 3 * recipe.steps // 4))
    if recipe.schedule == "quadratic-stepped":  # seed 002, sec. 2.2
        every = max(recipe.steps // 12, 1)
        return max(1.0 - (step // every) * every / recipe.steps, 0.0) ** 2
    raise UserError(f"unknown schedule {recipe.schedule!r} for {recipe.name}; use 'stepped' or 'quadratic-stepped'.")


def evaluate(model, noisy: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Validation MSE and PSNR (peak = the truths' largest value) in eval mode."""
    import torch

    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(noisy)).numpy()
    model.train(was)
    mse = float(np.mean((out - truth) ** 2))
    peak = float(truth.max())
    return {"val_mse": mse, "val_psnr": 10.0 * math.log10(peak * peak / mse) if mse > 0 else float("inf")}


def _freeze_batch_norm(model) -> None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def train_ede(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    resume: bool = True,
    max_minutes: float | None = None,
    threads: int | None = None,
    init: str | Path | None = None,
    log: Callable[[str], None] = print,
):
    """Train an ``ede-denoise`` or ``ede-autoencode`` recipe; same contract as :func:`emdenoise.train.loop.train`.

    Parameters
    ----------
    recipe : Recipe
        ``task`` in :data:`TASKS`; ``data`` as :func:`clean_pool` takes, plus ``dose``
        ("low" or "ordinary"); ``freeze_bn`` in ``recipe.augment`` is not used: the
        fraction of steps with frozen batch norm is ``recipe.data.get("freeze_bn", 0.1)``.
    out_dir, resume, max_minutes, threads, init, log
        As :func:`emdenoise.train.loop.train`; ``init`` starts from a checkpoint of the
        same architecture (the ordinary-dose fine-tune of seed 001, sec. 3.2).

    Returns
    -------
    emdenoise.train.run_state.TrainResult
    """
    import torch

    from emdenoise.models import build_model, count_parameters

    if recipe.task not in TASKS:
        raise UserError(f"train_ede trains {', '.join(TASKS)} recipes, not {recipe.task!r}.")
    out_dir = checkpoints.check_out_dir(out_dir)
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(recipe.seed)
    model = build_model(recipe.model)
    multiple = int(getattr(model, "multiple_of", 1))
    if recipe.patch % multiple:
        raise UserError(f"patch {recipe.patch} is not a multiple of {multiple}, which {recipe.model['family']} needs; choose another --patch.")
    denoise = recipe.task == "ede-denoise"
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=(0.5 if denoise else 0.9, 0.999),
                                 weight_decay=5e-5 if denoise else 0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(recipe, s))
    start_state = restore(model, optimizer, scheduler, recipe, out_dir, resume=resume, init=init, log=log)
    start, best_score, best_step = start_state.step, start_state.best_score, start_state.best_step
    history, losses, before, origin = start_state.history, start_state.losses, start_state.seconds, start_state.origin
    last_path = out_dir / checkpoints.LAST

    train_pool = clean_pool(recipe.data, role="train", seed=recipe.seed)
    val_pool = clean_pool(recipe.data, role="val", seed=recipe.seed)
    val_noisy, val_truth = validation_set(val_pool, recipe)
    log(f"{recipe.name} ({recipe.variant}): {count_parameters(model):,} parameters; data: {train_pool.description}")
    freeze_from = int(recipe.steps * (1.0 - float(recipe.data.get("freeze_bn", 0.1 if denoise else 0.0))))
    began = time.perf_counter()
    scale = 1000.0 if denoise else 1.0  # seed 001: Huberised 1000 * MSE

    def state_now(step: int) -> dict[str, Any]:
        return {"format": "emdenoise-checkpoint/1", "recipe": recipe.as_dict(), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "best_score": best_score, "best_step": best_step, "since_best": 0, "history": history,
                "losses": losses, "seconds": before + time.perf_counter() - began,
                "torch_version": str(torch.__version__), "init": origin,
                "data": {"train": train_pool.description, "validation": val_pool.description,
                         "dose": recipe.data.get("dose", "low")}}

    model.train()
    stopped, step = "steps", start
    while step < recipe.steps:
        if step >= freeze_from:
            _freeze_batch_norm(model)
        rng = np.random.default_rng([recipe.seed, TRAIN_STREAM, step])
        noisy, truth = make_batch(train_pool, recipe, rng)
        mse = torch.mean((model(torch.from_numpy(noisy)) - torch.from_numpy(truth)) ** 2)
        loss = huberised(scale * mse)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(mse.detach()))
        step += 1
        out_of_time = max_minutes is not None and (time.perf_counter() - began) / 60.0 >= max_minutes
        if step % recipe.val_every and step < recipe.steps and not out_of_time:
            continue
        scores = evaluate(model, val_noisy, val_truth)
        entry = {"step": step, "loss": float(np.mean(losses[-recipe.val_every:])), "lr": optimizer.param_groups[0]["lr"],
                 "seconds": round(before + time.perf_counter() - began, 1), **scores}
        history.append(entry)
        improved = -scores["val_mse"] > best_score
        if improved:
            best_score, best_step = -scores["val_mse"], step
        log(f"step {step}/{recipe.steps}  mse {entry['loss']:.3e}  val MSE {scores['val_mse']:.3e}  "
            f"val PSNR {scores['val_psnr']:.2f} dB  lr {entry['lr']:.2e}  {entry['seconds']:.0f} s{'  *' if improved else ''}")
        state = state_now(step)
        if improved:
            checkpoints.save_checkpoint(out_dir / checkpoints.BEST, state)
        checkpoints.save_checkpoint(last_path, state)
        if out_of_time:
            stopped = "time"
            break
    return TrainResult(recipe, step, best_step, best_score, stopped, before + time.perf_counter() - began,
                       out_dir, history, losses)
