"""The training loop shared by every recipe (seed 003, appendix C.4; seed 002, sec. 3.2).

Adam with the recipe's learning rate; SBD recipes halve it when the validation PSNR
plateaus and stop early when it stops improving, Ede's kernels/MLPs follow the quadratic
decay. Loss: mean squared error against the clean patch (``denoise``) or against the
teacher's output (``distill``). Ede's recipes (``ede-*``) run in :mod:`emdenoise.train.ede`;
what both loops share (resume, :class:`~emdenoise.train.run_state.TrainResult`) is in
:mod:`emdenoise.train.run_state`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emdenoise.errors import UserError
from emdenoise.metrics import psnr
from emdenoise.train import checkpoints
from emdenoise.train.data import VALIDATION_STREAM, TRAIN_STREAM, Augment, make_pool, noisy_batch, validation_pairs
from emdenoise.train.recipes import Recipe
from emdenoise.train.run_state import TrainResult, restore


class _Data:
    """Training batches and validation pairs of one recipe."""

    def __init__(self, recipe: Recipe, log: Callable[[str], None]):
        self.recipe = recipe
        train_pool = make_pool(recipe.data, role="train", seed=recipe.seed, dose=recipe.dose)
        val_pool = make_pool(recipe.data, role="val", seed=recipe.seed, dose=recipe.dose)
        self.description = train_pool.description
        self.val_description = val_pool.description
        self.augment = Augment.from_dict(recipe.augment)
        if recipe.task == "distill":
            from emdenoise.train.distill import teacher_pairs

            if not recipe.teacher:
                raise UserError("a distill recipe needs a teacher model id; pass --teacher MODEL_ID.")
            draws = int(recipe.data.get("draws", 1))
            log(f"running teacher {recipe.teacher} on {len(train_pool) * draws} training images")
            self.train_pairs = teacher_pairs(train_pool, recipe.teacher, draws=draws, seed=recipe.seed, stream=TRAIN_STREAM)
            self.val_pairs = teacher_pairs(val_pool, recipe.teacher, draws=1, seed=recipe.seed, stream=VALIDATION_STREAM)
            self.val_clean = list(val_pool.images)
        else:
            self.pool = train_pool
            pairs = validation_pairs(val_pool, seed=recipe.seed)
            self.val_pairs = [(noisy, clean) for noisy, clean in pairs]
            self.val_clean = [clean for _, clean in pairs]
        self.doses = [float(np.mean(image)) for image in train_pool.images]

    def batch(self, step: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.recipe.seed, 99, step])
        if self.recipe.task == "distill":
            from emdenoise.train.distill import crop_batch

            return crop_batch(self.train_pairs, batch=self.recipe.batch, patch=self.recipe.patch, margin=margin, rng=rng,
                              flips=self.augment.flips)
        return noisy_batch(self.pool, batch=self.recipe.batch, patch=self.recipe.patch, rng=rng, augment=self.augment)


def _crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = (s - s % multiple for s in image.shape)
    return image[:h, :w]


def validate(model, pairs, clean_images, *, task: str, multiple_of: int = 1) -> dict[str, float]:
    """Validation scores: mean PSNR against the clean image (SBD's criterion), and for
    ``distill`` the MSE against the teacher's output (seed 002's criterion).
    """
    import torch

    was_training = model.training
    model.eval()
    psnrs, mses = [], []
    with torch.no_grad():
        for (noisy, target), clean in zip(pairs, clean_images):
            noisy = _crop_to_multiple(noisy, multiple_of)
            out = model(torch.from_numpy(np.ascontiguousarray(noisy))[None, None]).numpy()[0, 0]
            psnrs.append(psnr(out, _crop_to_multiple(clean, multiple_of)))
            if task == "distill":
                mses.append(float(np.mean((out - _crop_to_multiple(target, multiple_of)) ** 2)))
    model.train(was_training)
    scores = {"val_psnr": float(np.mean(psnrs))}
    if task == "distill":
        scores["val_mse"] = float(np.mean(mses))
    return scores


def _score(scores: dict[str, float], task: str) -> float:
    return -scores["val_mse"] if task == "distill" else scores["val_psnr"]


def train(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    resume: bool = True,
    max_minutes: float | None = None,
    threads: int | None = None,
    init: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``recipe`` and write checkpoints to ``out_dir``.

    Parameters
    ----------
    recipe : Recipe
    out_dir : path-like
        Checkpoint folder (outside the repository); an existing ``last.pt`` is resumed.
    resume : bool
        Continue from ``out_dir/last.pt`` when it exists (else start afresh).
    max_minutes : float, optional
        Wall-time budget; the run checkpoints and stops when it is spent.
    threads : int, optional
        Torch intra-op threads.
    init : path-like, optional
        Start from the weights of this checkpoint (same architecture), e.g. to go on with
        larger patches; ignored when resuming.
    log : callable
        Receives one line per validation.

    Returns
    -------
    TrainResult
    """
    if recipe.task.startswith("ede-"):  # Ede's noise law and losses (seed 001 sec. 3, seed 002 sec. 2.2)
        from emdenoise.train.ede import train_ede

        return train_ede(recipe, out_dir, resume=resume, max_minutes=max_minutes, threads=threads, init=init, log=log)
    import torch

    from emdenoise.models import build_model, count_parameters

    out_dir = checkpoints.check_out_dir(out_dir)
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(recipe.seed)
    model = build_model(recipe.model)
    distill = recipe.task == "distill"
    if distill:
        model.set_padding(False)
    margin = model.size // 2 if distill else 0
    multiple_of = int(getattr(model, "multiple_of", 1))
    if not distill and recipe.patch % multiple_of:
        raise UserError(f"patch {recipe.patch} is not a multiple of {multiple_of}, which {recipe.model['family']} needs; choose another --patch.")
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    if recipe.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=recipe.patience)
    elif recipe.schedule == "quadratic":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(1.0 - s / recipe.steps, 0.0) ** 2)
    else:
        raise UserError(f"unknown schedule {recipe.schedule!r}; use 'plateau' or 'quadratic'.")

    start = restore(model, optimizer, scheduler, recipe, out_dir, resume=resume, init=init, log=log)
    start_step, best_score, best_step, since_best = start.step, start.best_score, start.best_step, start.since_best
    history, losses, elapsed_before, origin = start.history, start.losses, start.seconds, start.origin
    last_path = out_dir / checkpoints.LAST

    data = _Data(recipe, log)
    log(f"{recipe.name} ({recipe.variant}): {count_parameters(model):,} parameters; data: {data.description}")
    began = time.perf_counter()

    def state_now(step: int) -> dict[str, Any]:
        return {
            "format": "emdenoise-checkpoint/1",
            "recipe": recipe.as_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "best_score": best_score,
            "best_step": best_step,
            "since_best": since_best,
            "history": history,
            "losses": losses,
            "seconds": elapsed_before + time.perf_counter() - began,
            "torch_version": str(torch.__version__),
            "init": origin,
            "data": {"train": data.description, "validation": data.val_description,
                     "mean_counts_per_px": [min(data.doses), max(data.doses)]},
        }

    model.train()
    stopped = "steps"
    step = start_step
    while step < recipe.steps:
        noisy, target = data.batch(step, margin)
        output = model(torch.from_numpy(noisy))
        loss = torch.nn.functional.mse_loss(output, torch.from_numpy(target))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if recipe.schedule == "quadratic":
            scheduler.step()
        losses.append(float(loss.detach()))
        step += 1
        out_of_time = max_minutes is not None and (time.perf_counter() - began) / 60.0 >= max_minutes
        if step % recipe.val_every and step < recipe.steps and not out_of_time:
            continue
        if distill:
            model.set_padding(True)
        scores = validate(model, data.val_pairs, data.val_clean, task=recipe.task, multiple_of=multiple_of)
        if distill:
            model.set_padding(False)
        score = _score(scores, recipe.task)
        if recipe.schedule == "plateau":
            scheduler.step(score)
        window = losses[-recipe.val_every:]
        entry = {"step": step, "loss": float(np.mean(window)), "lr": optimizer.param_groups[0]["lr"],
                 "seconds": round(elapsed_before + time.perf_counter() - began, 1), **scores}
        history.append(entry)
        improved = score > best_score
        if improved:
            best_score, best_step, since_best = score, step, 0
        else:
            since_best += 1
        log("step {step}/{total}  loss {loss:.5f}  val PSNR {psnr:.2f} dB{mse}  lr {lr:.2e}  {seconds:.0f} s{star}".format(
            step=step, total=recipe.steps, loss=entry["loss"], psnr=scores["val_psnr"], lr=entry["lr"],
            mse=f"  val MSE {scores['val_mse']:.3e}" if "val_mse" in scores else "", seconds=entry["seconds"],
            star="  *" if improved else ""))
        state = state_now(step)
        if improved:
            checkpoints.save_checkpoint(out_dir / checkpoints.BEST, state)
        checkpoints.save_checkpoint(last_path, state)
        if recipe.early_stop and since_best >= recipe.early_stop:
            stopped = "early-stop"
            break
        if out_of_time:
            stopped = "time"
            break
    return TrainResult(recipe, step, best_step, best_score, stopped, elapsed_before + time.perf_counter() - began,
                       out_dir, history, losses)
