"""Self-supervised training on the user's own frames (issue 18); needs the ``[train]`` extra.

One loop for the three methods of :mod:`emdenoise.adapt.data`; they differ only in the
(input, target, loss mask) a batch holds:

* ``pair``: input a crop of one frame of a registered pair, target the same crop of the
  other (Noise2Noise, Lehtinen et al. 2018: the noise of the target averages out of the loss);
* ``thinning``: input ``kept / p`` and target ``(counts - kept) / (1 - p)`` of one crop,
  ``kept ~ Binomial(counts, p)`` with ``p`` drawn from :attr:`AdaptConfig.thinning`, so the
  network sees doses up to nearly the full one and stays valid there;
* ``blindspot``: input the crop with a few pixels and their correlated scan-line
  neighbours replaced by random pixels of the crop, target the original, loss on the
  replaced centres only (structured Noise2Void, Broaddus et al. 2020);
* ``sure``: the blind-spot batches, but snapshots are scored unmasked, as served, by
  Monte-Carlo SURE (:func:`emdenoise.adapt.scores.sure_error`), so a prior that the
  fine-tuning does not improve is kept. Two ways of training unmasked were tried on the
  real HAADF pair and dropped: SURE as the *training* loss (finite-difference divergence)
  drove the held-out estimate negative at 2.3x the oracle Gaussian's true error, and
  recorrupted pairs (input ``y + z / 2``, target ``y - 2 z``, ``z`` Gaussian with the
  frame's variance and correlation; Pang et al. 2021) let the network tell the synthetic
  noise from the detector's and subtract it: SURE -0.34, true error 1.39x the prior's
  after 143 steps.

Flips keep the noise's scan-line structure (no 90 degree turns). Every
``eval_seconds`` the held-out strip is scored by the method's no-truth criterion
(:mod:`emdenoise.adapt.scores`) and the best snapshot is kept; the tuned classical filter is
scored the same way first, so the result says whether learning paid off.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from emdenoise.adapt import scores
from emdenoise.adapt.classical import ClassicalChoice, choose, choose_blind
from emdenoise.adapt.config import AdaptConfig
from emdenoise.adapt.data import AdaptData
from emdenoise.errors import InvalidInput


@dataclass
class AdaptResult:
    """A trained network and the record its model card keeps."""

    network: Any
    scale: float
    steps: int
    seconds: float
    cpu_seconds: float
    best_step: int
    error: float
    classical: ClassicalChoice
    identity_error: float
    criterion: str
    history: list = field(default_factory=list)
    stopped: str = "steps"

    @property
    def beats_classical(self) -> bool:
        return self.error < self.classical.error


#: Least time between two progress events (evaluations are always reported).
REPORT_SECONDS = 1.0
#: Fraction kept by the thinned held-out criterion (:func:`emdenoise.adapt.scores.thinned_error`'s default).
THINNED_FRACTION = 0.5

CRITERIA = {"pair": "paired error between registered frames (both directions)",
            "thinning": "thinned error between binomial halves (p = 0.5)",
            "blindspot": "blind-spot error of the masked (J-invariant) restoration",
            "sure": "Monte-Carlo SURE with the frame's noise variance and scan-line correlation"}


def _restorer(network, scale: float):
    import torch

    def restore(image: np.ndarray) -> np.ndarray:
        h, w = image.shape
        multiple = int(getattr(network, "multiple_of", 8))
        ph, pw = (-h) % multiple, (-w) % multiple
        padded = np.pad(np.asarray(image, dtype=np.float32) / scale, ((0, ph), (0, pw)), mode="reflect")
        with torch.no_grad():
            out = network(torch.from_numpy(padded)[None, None])[0, 0, :h, :w].numpy()
        return out * scale

    return restore


def blind_restorer(network, scale: float, half_width: int, *, spacing_y: int = 2):
    """The J-invariant form of a network: each pixel restored with itself and its correlated
    neighbours replaced (by the mean of the rows above and below), over a partition of passes."""
    restore = _restorer(network, scale)

    def blind(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        spacing_x = 2 * half_width + 2
        filled = 0.5 * (np.roll(image, 1, axis=0) + np.roll(image, -1, axis=0))  # rows carry independent noise
        out = np.zeros_like(image)
        for oy in range(spacing_y):
            for ox in range(spacing_x):
                centres = np.zeros(image.shape, bool)
                centres[oy::spacing_y, ox::spacing_x] = True
                masked = centres.copy()
                for k in range(1, half_width + 1):
                    masked |= np.roll(centres, k, axis=1) | np.roll(centres, -k, axis=1)
                probe = np.where(masked, filled, image)
                out[centres] = restore(probe)[centres]
        return out

    return blind


class _Sampler:
    """Training batches (input, target, loss weight) for one method."""

    def __init__(self, data: AdaptData, config: AdaptConfig, scale: float, rng: np.random.Generator):
        self.data, self.config, self.scale, self.rng = data, config, scale, rng
        _, h, w = data.train.shape
        multiple = 2 ** int(config.depth)
        self.crop = min(config.crop, (min(h, w) // multiple) * multiple)

    def _window(self):
        _, h, w = self.data.train.shape
        return self.rng.integers(0, h - self.crop + 1), self.rng.integers(0, w - self.crop + 1)

    def one(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frames, c, rng = self.data.train, self.crop, self.rng
        i, j = self._window()
        weight = np.ones((c, c), np.float32)
        if self.data.method == "pair":
            t = int(rng.integers(len(frames)))  # frames 2p and 2p + 1 are a registered pair
            x, y = frames[t, i : i + c, j : j + c], frames[t ^ 1, i : i + c, j : j + c]
        elif self.data.method == "thinning":
            t = int(rng.integers(len(frames)))
            p = rng.uniform(*self.config.thinning)
            x, y = scores.thinning_halves(frames[t, i : i + c, j : j + c], p, rng)
            if self.config.family == "vst-unet":  # Poisson input at the thinned dose, target of the same mean
                x, y = x * p, y * p
        else:  # blindspot, and sure, which trains the same way but keeps snapshots by SURE
            t = int(rng.integers(len(frames)))
            y = frames[t, i : i + c, j : j + c]
            x, weight = self._blind_spots(y)
        if rng.integers(2):
            x, y, weight = x[:, ::-1], y[:, ::-1], weight[:, ::-1]
        if rng.integers(2):
            x, y, weight = x[::-1], y[::-1], weight[::-1]
        return x / self.scale, y / self.scale, weight

    def _blind_spots(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, half, rng = self.crop, self.data.half_width, self.rng
        n = max(1, int(c * c * self.config.mask_share))
        rows, cols = rng.integers(0, c, n), rng.integers(0, c, n)
        x = crop.copy()
        for k in range(-half, half + 1):
            cc = np.clip(cols + k, 0, c - 1)
            x[rows, cc] = crop[rng.integers(0, c, n), rng.integers(0, c, n)]
        weight = np.zeros((c, c), np.float32)
        weight[rows, cols] = 1.0
        return x, weight

    def batch(self):
        import torch

        xs, ys, ws = zip(*(self.one() for _ in range(self.config.batch)))
        as_tensor = lambda items: torch.from_numpy(np.ascontiguousarray(np.stack(items)[:, None], dtype=np.float32))
        return as_tensor(xs), as_tensor(ys), as_tensor(ws)


def _average_into(averaged, network, decay: float) -> None:
    """``averaged <- decay * averaged + (1 - decay) * network``, parameter by parameter."""
    import torch

    with torch.no_grad():
        for mean, current in zip(averaged.parameters(), network.parameters()):
            mean.mul_(decay).add_(current, alpha=1.0 - decay)


def sure_correlations(data: AdaptData) -> list[float]:
    """Noise correlation along the scan line of the first frame's training rows, every lag SURE models."""
    return scores.noise_correlation_along_x(data.train[0])


def scored_frames(data: AdaptData) -> np.ndarray:
    """The frames a method's criterion scores: the held-out strips, or for ``sure`` the whole frames.

    SURE needs no held-out target, and on the real HAADF pair its gap between a prior and a
    fine-tune of it was compressed to noise on the 128-row strip (0.577 vs 0.606 where the
    strip's paired error was 0.792 vs 0.887), while on the whole frame it kept the order.
    """
    if data.method == "sure":
        return np.concatenate([data.train, data.held_out], axis=1)
    return data.held_out


def criterion_for(data: AdaptData) -> Callable[[scores.Restore], float]:
    """``restore -> no-truth error`` on :func:`scored_frames`, for the data's method."""
    held = scored_frames(data)
    if data.method == "sure":
        correlations = sure_correlations(data)
        return lambda restore: float(np.mean([scores.sure_error(restore, f, correlations=correlations, seed=t)
                                              for t, f in enumerate(held)]))
    if data.method == "pair":
        return lambda restore: float(np.mean([scores.paired_error(restore, held[t], held[t + 1])
                                              for t in range(0, len(held), 2)]))
    if data.method == "thinning":
        return lambda restore: float(np.mean([scores.thinned_error(restore, f, fraction=THINNED_FRACTION, seed=t)
                                              for t, f in enumerate(held)]))
    return lambda restore_blind: float(np.mean([scores.blind_spot_error(restore_blind, f) for f in held]))


def classical_for(data: AdaptData, config: AdaptConfig) -> ClassicalChoice:
    """``classical-auto`` on the held-out strip, by the same criterion as the network."""
    if data.method == "blindspot":
        return choose_blind(data.held_out, data.half_width)
    return choose(criterion_for(data), with_nlm=config.classical_nlm)


def build_network(config: AdaptConfig):
    """The untrained network ``config`` describes (:class:`~emdenoise.models.adapt_unet.AdaptUNet`
    or, for ``family="vst-unet"``, :class:`~emdenoise.models.vst_unet.VstUNet`)."""
    if config.family == "vst-unet":
        from emdenoise.models.vst_unet import VstUNet

        return VstUNet(config.width, config.depth)
    from emdenoise.models.adapt_unet import AdaptUNet

    return AdaptUNet(config.width, config.depth)


def train_adapt(data: AdaptData, config: AdaptConfig, *, init_state: dict | None = None,
                on_event: Callable[[dict], None] = lambda event: None,
                should_stop: Callable[[], bool] = lambda: False) -> AdaptResult:
    """Train :class:`emdenoise.models.adapt_unet.AdaptUNet` on ``data`` and keep the best snapshot.

    Parameters
    ----------
    data : AdaptData
    config : AdaptConfig
    init_state : dict, optional
        State dict to start from (``--from`` a model adapted before).
    on_event : callable
        Receives progress dictionaries (``kind``, ``step``, ``total_steps``, ``losses``,
        ``held_out_mse``, ``classical_mse``, ``elapsed``, ``eta``, ``message``).
    should_stop : callable
        Polled every step; True ends training with the best snapshot so far.

    Returns
    -------
    AdaptResult
    """
    import torch

    torch.set_num_threads(max(1, int(config.threads)))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    # The VST U-Net stabilises counts itself: it must see them unscaled.
    scale = 1.0 if config.family == "vst-unet" else float(max(data.train.mean(), 1e-3))
    network = build_network(config)
    if init_state is not None:
        try:
            network.load_state_dict(init_state)
        except RuntimeError as error:
            raise InvalidInput(f"the starting model does not fit a {config.family} of width {config.width} and depth "
                               f"{config.depth} ({error}); set --set width=<its width> or start from scratch.") from None
    criterion = criterion_for(data)
    averaged = copy.deepcopy(network).eval()  # the weight average that is scored and kept

    def evaluate() -> float:
        if data.method == "blindspot":
            return criterion(blind_restorer(averaged, scale, data.half_width))
        restore = _restorer(averaged, scale)
        if data.method == "thinning" and config.family == "vst-unet":
            # the criterion feeds kept / 0.5; a VST network must see the thinned counts themselves
            return criterion(lambda image: restore(image * THINNED_FRACTION) / THINNED_FRACTION)
        return criterion(restore)

    on_event({"kind": "status", "message": "tuning classical-auto on the held-out strip"})
    classical = classical_for(data, config)
    identity = criterion(lambda image: image) if data.method != "blindspot" else float("nan")  # raw frames' error
    on_event({"kind": "status", "message": f"classical-auto: {classical.label}, held-out error {classical.error:.4g}"})
    sampler = _Sampler(data, config, scale, rng)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    # The starting point is a candidate too: a prior (--from) that adapting does not improve is kept.
    best_error, best_step, best_state = evaluate(), 0, copy.deepcopy(averaged.state_dict())
    history: list[dict] = [{"step": 0, "seconds": 0.0, "held_out_mse": best_error}]
    start, cpu_start = time.monotonic(), time.process_time()
    last_eval, last_report, step, stopped, running = start, 0.0, 0, "steps", None
    budget = max(1.0, float(config.max_seconds))
    while step < config.steps:
        if should_stop():
            stopped = "cancelled"
            break
        elapsed = time.monotonic() - start
        if elapsed >= budget:
            stopped = "time"
            break
        progress = max(step / config.steps, elapsed / budget)
        for group in optimizer.param_groups:
            group["lr"] = config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + np.cos(np.pi * min(progress, 1.0)))
        x, y, w = sampler.batch()
        loss = ((network(x) - y) ** 2 * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        _average_into(averaged, network, min(config.ema, (1 + step) / (10 + step)))
        running = float(loss) if running is None else 0.95 * running + 0.05 * float(loss)
        event = {"kind": "progress", "step": step, "total_steps": int(config.steps), "losses": {"train": running},
                 "elapsed": elapsed, "eta": max(0.0, budget - elapsed)}
        if time.monotonic() - last_eval >= config.eval_seconds:
            last_eval = time.monotonic()
            error = evaluate()
            history.append({"step": step, "seconds": round(elapsed, 1), "held_out_mse": error})
            if error < best_error:
                best_error, best_step, best_state = error, step, copy.deepcopy(averaged.state_dict())
            event.update(held_out_mse=error, classical_mse=classical.error)
        if "held_out_mse" in event or time.monotonic() - last_report >= REPORT_SECONDS:
            last_report = time.monotonic()  # a watcher re-reads the event log: a line per step would cost it CPU
            on_event(event)
    error = evaluate()
    history.append({"step": step, "seconds": round(time.monotonic() - start, 1), "held_out_mse": error})
    if error < best_error:
        best_error, best_step, best_state = error, step, copy.deepcopy(averaged.state_dict())
    network.load_state_dict(best_state)
    network.eval()
    return AdaptResult(network=network, scale=scale, steps=step, seconds=time.monotonic() - start,
                       cpu_seconds=time.process_time() - cpu_start, best_step=best_step, error=best_error,
                       classical=classical, identity_error=identity, criterion=CRITERIA[data.method],
                       history=history, stopped=stopped)
