"""Training that accumulates: a counts denoiser on images simulated on the fly (issue 17, item 5).

Every batch is new (:class:`emdenoise.simulate.stem_imager.StemImager`, or the HRTEM
exit-wave imager), so the run never overfits a fixed set and can continue for as long as
there is CPU time. The loss is the squared error against the clean counts divided by the
image's dose, so every dose weighs alike (the error of a good denoiser grows about
linearly with the dose). Weights are averaged (EMA), and the average is what is
validated, checkpointed and exported.

A run folder holds ``state.pt`` (everything, written every few minutes, atomically),
``history.jsonl`` (one validation per line, with cumulative steps and CPU hours) and
``carry.npz``: the averaged weights in float16 plus the counters, small enough to commit
so a later session on a fresh machine continues the curve (``--init carry.npz``), and
``best.npz``, the same for the best validation so far (what gets exported).

Run it in the background with one thread::

    OMP_NUM_THREADS=1 nohup python -m emdenoise.train.sim_denoiser stem --out RUN --hours 2 &
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.train.checkpoints import save_checkpoint


@dataclass(frozen=True)
class SimTrainConfig:
    """Settings of a sim-trained denoiser run.

    Attributes
    ----------
    source : str
        ``stem`` (scene + scan simulator) or ``hrtem`` (exit-wave bank + imaging).
    width, depth : int
        U-Net width and number of poolings (:class:`emdenoise.models.vst_unet.VstUNet`).
    crop, batch : int
        Training image side and images per step.
    lr : float
        Adam learning rate (constant; lower it with ``--set lr=...`` when the curve flattens).
    ema : float
        Decay of the weight average.
    clip : float
        Largest gradient norm (0: no clipping); one bad batch cannot throw the weights away.
    seed : int
        Batches come from ``default_rng([seed, step])``: a resumed run sees new data.
    validation : str
        ``sim``: images of the run's own source drawn from ``default_rng([VALIDATION_SEED, i])``
        (``validation_images`` of side ``validation_size``); ``crossdomain-hrtem``: the
        validation split of the fixed cross-domain HRTEM set (:mod:`emdenoise.simulate.crossdomain`),
        structures and potentials the HRTEM bank never holds.
    validation_images, validation_size : int
        Size of the ``sim`` validation set.
    validate_every : int
        Steps between validations (and full checkpoints).
    threads : int
        Torch intra-op threads (1: the machine is shared).
    device : str
        ``cpu`` or ``cuda`` (the GPU recipe, :mod:`emdenoise.train.gpu_recipe`).
    workers : int
        Processes that simulate batches ahead of the training step (0: in the training
        process). Step ``k``'s batch is the same whichever process makes it.
    """

    source: str = "stem"
    width: int = 32
    depth: int = 3
    crop: int = 128
    batch: int = 8
    lr: float = 5e-4
    ema: float = 0.999
    clip: float = 1.0
    seed: int = 0
    validation: str = "sim"
    validation_images: int = 24
    validation_size: int = 192
    validate_every: int = 400
    threads: int = 1
    device: str = "cpu"
    workers: int = 0


#: Seed of the fixed validation images; training batches never use it.
VALIDATION_SEED = 917_331


def make_imager(source: str, **options: Any):
    """The image source of a run: ``stem`` or ``hrtem``."""
    if source == "stem":
        from emdenoise.simulate.stem_imager import StemImager

        return StemImager(**options)
    if source == "hrtem":
        from emdenoise.simulate.imaging import ExitWaveImager

        return ExitWaveImager(**options)
    raise ValueError(f"unknown source {source!r}; use 'stem' or 'hrtem'.")


def validation_set(imager, count: int, size: int) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """The fixed validation images ``(clean, noisy, params)`` of a source."""
    return [imager.sample(np.random.default_rng([VALIDATION_SEED, i]), size) for i in range(count)]


def scored_images(config: "SimTrainConfig", imager) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """The validation images a run is scored on (see :attr:`SimTrainConfig.validation`)."""
    if config.validation == "sim":
        return validation_set(imager, config.validation_images, config.validation_size)
    if config.validation == "crossdomain-hrtem":
        from emdenoise.simulate.crossdomain import ensure_crossdomain, load_split

        folders = ensure_crossdomain(log=lambda line: None)
        return [(clean, noisy, record) for clean, noisy, record in load_split(folders["val"])]
    raise ValueError(f"unknown validation {config.validation!r}; use 'sim' or 'crossdomain-hrtem'.")


def dose_of(clean: np.ndarray) -> float:
    """Mean counts per pixel of a clean image (at least 1e-3)."""
    return max(float(clean.mean()), 1e-3)


def normalised_error(restored: np.ndarray, clean: np.ndarray) -> float:
    """``mean((restored - clean)^2) / dose``: 1 is the raw Poisson frame's error."""
    return float(np.mean((restored.astype(np.float64) - clean) ** 2) / dose_of(clean))


def gaussian_reference(images, sigmas=None) -> dict[str, Any]:
    """The Gaussian whose sigma is best on ``images`` by mean normalised error (tuned classical row)."""
    from scipy.ndimage import gaussian_filter

    from emdenoise.tuning import GAUSSIAN_SIGMAS, tune

    def score(sigma):
        return float(np.mean([normalised_error(gaussian_filter(n, sigma, mode="reflect"), c) for c, n, _ in images]))

    tuned = tune(sigmas or GAUSSIAN_SIGMAS, score)
    return {"sigma": float(tuned.value), "error": float(tuned.score)}


def restore_whole(model, image: np.ndarray) -> np.ndarray:
    """``model`` on one whole 2-D frame (reflect-padded to its multiple, cropped back), on its device."""
    import torch

    h, w = image.shape
    multiple = int(getattr(model, "multiple_of", 1))
    padded = np.pad(image, ((0, (-h) % multiple), (0, (-w) % multiple)), mode="reflect")
    device = next(model.parameters()).device
    with torch.no_grad():
        batch = torch.from_numpy(np.ascontiguousarray(padded, np.float32))[None, None].to(device)
        return model(batch)[0, 0, :h, :w].cpu().numpy()


def evaluate(model, images) -> float:
    """Mean normalised error of ``model`` on ``images`` (whole images, one at a time)."""
    return float(np.mean([normalised_error(restore_whole(model, noisy), clean) for clean, noisy, _ in images]))


def make_batch(imager, config: SimTrainConfig, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(noisy, clean, dose)`` of one step: new images from ``default_rng([seed, step])``."""
    rng = np.random.default_rng([config.seed, step])
    cleans, noisies = [], []
    for _ in range(config.batch):
        clean, noisy, _ = imager.sample(rng, config.crop)
        cleans.append(clean)
        noisies.append(noisy)
    clean = np.stack(cleans)[:, None]
    dose = np.maximum(clean.mean(axis=(1, 2, 3)), 1e-3).astype(np.float32)
    return np.stack(noisies)[:, None], clean, dose


def _carry(model, ema_model, config: SimTrainConfig, counters: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {f"ema/{k}": v.detach().cpu().numpy().astype(np.float16) for k, v in ema_model.state_dict().items()}
    arrays["meta"] = np.frombuffer(json.dumps({"config": asdict(config), **counters}).encode(), dtype=np.uint8)
    return arrays


def read_carry(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, ema state dict as float32 arrays)`` from a ``carry.npz``."""
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        weights = {k[4:]: data[k].astype(np.float32) for k in data.files if k.startswith("ema/")}
    return meta, weights


def model_from_carry(path: str | Path):
    """``(VstUNet with the carried averaged weights, in eval mode, meta)`` of a ``carry.npz``."""
    import torch

    from emdenoise.models.vst_unet import VstUNet

    meta, weights = read_carry(path)
    model = VstUNet(meta["config"]["width"], meta["config"].get("depth", 3))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval(), meta


#: Settings a continued run takes from the new call; the rest come from the saved run.
SESSION_SETTINGS = ("lr", "threads", "device", "workers", "batch", "validate_every")


def _continued(saved: dict[str, Any], given: SimTrainConfig) -> SimTrainConfig:
    base = SimTrainConfig(**{k: v for k, v in saved.items() if k in SimTrainConfig.__dataclass_fields__})
    return replace(base, **{k: getattr(given, k) for k in SESSION_SETTINGS})


class _Batches:
    """Endless batches from step ``start`` on, split over DataLoader worker processes in step order."""

    def __init__(self, imager, config: SimTrainConfig, start: int):
        self.imager, self.config, self.start = imager, config, start

    def __iter__(self):
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        worker, count = (info.id, info.num_workers) if info else (0, 1)
        step = self.start + worker
        while True:
            yield make_batch(self.imager, self.config, step)
            step += count


def _batch_source(imager, config: SimTrainConfig, start: int):
    """An iterator of ``(noisy, clean, dose)`` for steps ``start, start + 1, ...``."""
    if config.workers <= 0:
        return iter(_Batches(imager, config, start))
    import torch.utils.data

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(_Batches(imager, config, start))

    loader = torch.utils.data.DataLoader(Stream(), batch_size=None, num_workers=config.workers,
                                         prefetch_factor=4, persistent_workers=True)
    return (tuple(t.numpy() for t in batch) for batch in loader)


def train(out: str | Path, config: SimTrainConfig, *, hours: float, max_steps: int | None = None,
          init: str | Path | None = None, imager_options: dict | None = None, seed: int | None = None,
          log=print) -> dict[str, Any]:
    """Train (or continue) a run in ``out`` for ``hours`` of wall time.

    Parameters
    ----------
    out : path
        Run folder; continued when it holds ``state.pt``.
    config : SimTrainConfig
        Used for a new run; a continued run keeps its saved configuration except ``lr``
        and ``threads``, which may change between sessions.
    hours : float
        Wall time of this call's training steps (set-up not counted).
    max_steps : int, optional
        Stop after this many steps of this call, whichever comes first.
    init : path, optional
        A ``carry.npz`` to start from when ``out`` has no ``state.pt`` (a fresh machine).
    seed : int, optional
        Batch seed of a branch (default: the run's own): two branches of one carry with
        different seeds see different images, e.g. for a weight average of both.

    Returns
    -------
    dict
        Counters: steps, cpu_hours, best validation error and the Gaussian reference.
    """
    import torch

    from emdenoise.models.vst_unet import VstUNet

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(config.threads))
    state_path = out / "state.pt"
    counters: dict[str, Any] = {"steps": 0, "cpu_seconds": 0.0, "best_error": None, "best_step": None}
    saved = None
    if state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        config = _continued(saved["config"], config)
        counters.update(saved["counters"])
    elif init is not None:
        meta, weights = read_carry(init)
        config = _continued(meta["config"], config)
        counters.update({k: meta[k] for k in counters if k in meta})
    if seed is not None:
        config = replace(config, seed=int(seed))
    device = torch.device(config.device)
    model = VstUNet(config.width, config.depth)
    if saved is not None:
        model.load_state_dict(saved["model"])
    elif init is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    ema_model = copy.deepcopy(model)
    if saved is not None:
        ema_model.load_state_dict(saved["ema"])
    model.to(device)
    ema_model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if saved is not None and "optimizer" in saved:
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = config.lr
    imager = make_imager(config.source, **(imager_options or {}))
    images = scored_images(config, imager)
    reference = counters.get("gaussian") or gaussian_reference(images)
    counters["gaussian"] = reference
    log(json.dumps({"event": "start", "steps": counters["steps"], "config": asdict(config), "gaussian": reference}))
    history = out / "history.jsonl"
    deadline = time.monotonic() + hours * 3600.0
    last_step = None if max_steps is None else counters["steps"] + int(max_steps)
    cpu_mark = time.process_time()

    def finished() -> bool:
        return time.monotonic() >= deadline or (last_step is not None and counters["steps"] >= last_step)

    batches = _batch_source(imager, config, counters["steps"])
    while not finished():
        noisy, clean, dose = (torch.from_numpy(a).to(device) for a in next(batches))
        model.train()
        restored = model(noisy)
        per_image = ((restored - clean) ** 2).mean(dim=(1, 2, 3)) / dose
        loss = per_image.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not torch.isfinite(loss):
            optimizer.zero_grad(set_to_none=True)  # skip a non-finite batch rather than poison Adam's moments
            counters["skipped_steps"] = counters.get("skipped_steps", 0) + 1
        else:
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
        # Warm-up of the average (as timm's ModelEmaV2 does): early steps are not pulled back to the init.
        decay = min(config.ema, (1.0 + counters["steps"]) / (10.0 + counters["steps"]))
        with torch.no_grad():
            for average, current in zip(ema_model.parameters(), model.parameters()):
                average.mul_(decay).add_(current, alpha=1.0 - decay)
        counters["steps"] += 1
        if counters["steps"] % config.validate_every == 0 or finished():
            if hasattr(imager, "refresh"):  # a bank still being filled: use the waves added since
                imager.refresh()
            now = time.process_time()
            counters["cpu_seconds"] += now - cpu_mark
            cpu_mark = now
            ema_model.eval()
            error = evaluate(ema_model, images)
            improved = counters["best_error"] is None or error < counters["best_error"]
            if improved:
                counters["best_error"], counters["best_step"] = error, counters["steps"]
            record = {"step": counters["steps"], "cpu_hours": round(counters["cpu_seconds"] / 3600, 4),
                      "val_error": round(error, 6), "val_vs_gaussian": round(error / reference["error"], 5),
                      "train_loss": round(float(loss.detach()), 6), "lr": config.lr, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with history.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            log(json.dumps(record))
            state = {"config": asdict(config), "counters": counters, "model": model.state_dict(),
                     "ema": ema_model.state_dict(), "optimizer": optimizer.state_dict()}
            save_checkpoint(state_path, state)
            arrays = _carry(model, ema_model, config, counters)
            np.savez(out / ".carry.tmp.npz", **arrays)
            os.replace(out / ".carry.tmp.npz", out / "carry.npz")
            if improved:  # the averaged weights that validated best: what gets exported
                np.savez(out / ".best.tmp.npz", **arrays)
                os.replace(out / ".best.tmp.npz", out / "best.npz")
    return counters


def main(argv: list[str] | None = None) -> int:
    """``python -m emdenoise.train.sim_denoiser SOURCE --out RUN --hours H [--init carry.npz] [--set k=v]``."""
    parser = argparse.ArgumentParser(prog="python -m emdenoise.train.sim_denoiser", description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=("stem", "hrtem"))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--steps", type=int, help="stop after this many steps of this run (default: by --hours only)")
    parser.add_argument("--init", type=Path, help="carry.npz to continue from on a fresh machine")
    parser.add_argument("--seed", type=int, help="batch seed of this branch (default: the run's own)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    fields = {f: type(getattr(SimTrainConfig, f)) for f in SimTrainConfig.__dataclass_fields__}
    changes: dict[str, Any] = {"source": args.source}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in fields:
            parser.error(f"unknown setting {key!r}; known: {', '.join(fields)}")
        changes[key] = fields[key](value)
    counters = train(args.out, SimTrainConfig(**changes), hours=args.hours, max_steps=args.steps, init=args.init,
                     seed=args.seed)
    print(json.dumps({"event": "done", **{k: v for k, v in counters.items() if k != "gaussian"}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
