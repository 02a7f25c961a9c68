"""Noise2Atom training on the user's own STEM series (seed 004, Methods).

Unpaired: noisy crops ``s`` of the series and clean images ``c`` of the simulated
Gaussian-peak domain (:func:`emdenoise.simulate.stem.noise2atom_clean`). One step
("Training Details", in a single batch):

1. the critic ``D`` is trained ``critic_steps`` (5) times, clean images to True and
   translated noisy images ``Ms2c(s)`` to False, with the Wasserstein loss and a gradient
   penalty of weight ``lambda = 10`` (eq. 1-5);
2. ``Ms2c`` and ``Mc2s`` are trained once on ``alpha * L_gan + beta * L_cycle + L_lfc``
   (eq. 8, ``alpha = 5``, ``beta = 1``): ``L_gan`` makes ``D(Ms2c(s))`` True, ``L_cycle =
   E|c - Ms2c(Mc2s(c))|`` (eq. 6) and ``L_lfc = E|Ms2b(s) - Ms2b(Mc2s(Ms2c(s)))|`` (eq. 7)
   with ``Ms2b`` the fixed 33 x 33 Gaussian.

RMSProp, learning rate 5e-5, momentum 0.9, batch 6, 128 x 128 crops, ~100 frames
sampled from the series. The paper's eq. 1 and 3 place the penalty between ``s`` and
``Ms2c(s)``; that leaves the clean images out of the critic's loss, so the standard
WGAN-GP reading is used: real = clean, fake = ``Ms2c(s)``, penalty on their mixtures.

Held out from training is one consecutive pair of frames; every ``eval_every`` steps both
are restored and scored with CSS (eq. 10), the paired-frame error (mean((f(A) - B)^2) -
mean(B), unbiased for Poisson noise, issue 4) and the thinned error
(:func:`thinned_error`). CSS rewards blur, and the paired error also charges the model
for whatever moved between the two frames (atoms hop, clusters jitter), which rewards
blur too; the thinned error compares each frame with an independent Poisson copy of
itself, so nothing moved. The generator kept is the one with the lowest thinned error.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from emdenoise.errors import UserError

#: Clean-domain intensity (atoms per position x Gaussian peak of 1) mapped to +1.
CLEAN_SCALE = 4.0


@dataclass(frozen=True)
class Noise2AtomConfig:
    """Network size and training schedule (defaults: seed 004's, "Training Details").

    Attributes
    ----------
    width, depth, residual_blocks : int
        Generator U-Net: channels at full resolution, levels (3), residual blocks (16).
    critic_width : int
        Channels of the critic's first module.
    crop, batch : int
        Training crop side (128) and batch size (6).
    lr, momentum : float
        RMSProp (5e-5, 0.9).
    critic_steps : int
        Critic updates per generator update (5).
    gp_lambda, alpha, beta : float
        Gradient-penalty weight (10), GAN weight (5), cycle weight (1) of eq. 8.
    identity : float
        Weight of CycleGAN's identity loss ``E|c - Ms2c(c)|`` (Zhu et al. 2017, which seed 004
        builds on; not in seed 004's eq. 8, so 0 in the paper preset). It tells ``Ms2c`` to
        keep bright peaks bright where they are; without it a short CPU run can settle on an
        inverted or empty image that the low-frequency cycle loss cannot tell apart.
    warmup_steps : int
        Generator steps before the adversarial training (an emdenoise addition, 0 in the
        paper preset) in which ``Ms2c`` learns to reproduce a Gaussian-smoothed copy of its
        input (sigma 1 px, its 99.9th percentile mapped to 3 atoms) next to the cycle and
        low-frequency losses: a start with the right polarity and positions, which the
        critic then sharpens into Gaussian peaks. Counted in ``steps``.
    warmup_lr : float
        RMSProp learning rate of the warm-up (the adversarial phase uses ``lr``).
    warmup_sigma : float
        Gaussian sigma [px] of the warm-up target (replaced when ``match_peak_width``
        narrows the clean domain: then the square root of its largest variance).
    warmup_loss : {"l1", "l2"}
        Distance to the warm-up target. The L1 optimum of sparse, sharp peaks can be the
        empty background (each pixel's median), which a saturated tanh does not leave; on
        the simulated 0.06 counts/px series with a matched clean domain, L1 warm-ups
        collapsed to a constant in 2 of 2 runs at warm-up learning rate 1e-3, L2 warm-ups in
        4 of 7 differently configured runs at 1e-3 and in 0 of 2 at 3e-4.
    match_peak_width : bool
        Place the clean domain's variance range at the series' own peak width
        (:func:`emdenoise.train.peak_width.clean_variance_for`) when that lies outside
        ``clean_variance``. Seed 004's 1-10 px^2 suits its sampling; for sharper peaks a
        critic trained on broad ones makes the generator blur.
    frames : int
        Frames sampled from the series for training (~100; seed 004 uses 120).
    steps : int
        Generator updates.
    max_seconds : float
        Stop after this wall time (0: no limit).
    eval_every : int
        Steps between CSS/paired-error evaluations on the held-out pair.
    clean_variance : (float, float)
        Variance range [px^2] of the clean domain's Gaussian peaks ([1, 10] in the paper).
    clean_pool : int
        Clean images simulated up front and drawn from (with flips and rotations).
    seed : int
    threads : int
        torch threads in the worker.
    """

    width: int = 32
    depth: int = 3
    residual_blocks: int = 16
    critic_width: int = 32
    crop: int = 128
    batch: int = 6
    lr: float = 5e-5
    momentum: float = 0.9
    critic_steps: int = 5
    gp_lambda: float = 10.0
    alpha: float = 5.0
    beta: float = 1.0
    identity: float = 0.0
    warmup_steps: int = 0
    warmup_lr: float = 1e-3
    warmup_sigma: float = 1.0
    warmup_loss: str = "l1"
    match_peak_width: bool = False
    frames: int = 100
    steps: int = 20000
    max_seconds: float = 0.0
    eval_every: int = 200
    clean_variance: tuple = (1.0, 10.0)
    clean_pool: int = 2048
    seed: int = 0
    threads: int = 1

    def __post_init__(self):
        if self.warmup_loss not in ("l1", "l2"):
            raise UserError(f"warmup_loss {self.warmup_loss!r} is not known; choose l1 or l2.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Noise2AtomConfig":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"unknown Noise2Atom setting(s) {', '.join(unknown)}; see emdenoise.train.noise2atom.Noise2AtomConfig.")
        if "clean_variance" in known:
            known["clean_variance"] = tuple(known["clean_variance"])
        return cls(**known)


#: Named sizes: the paper's network, one that trains in minutes on a CPU, one for tests.
PRESETS: dict[str, Noise2AtomConfig] = {
    "paper": Noise2AtomConfig(),
    "cpu": Noise2AtomConfig(width=8, residual_blocks=2, critic_width=8, crop=64, steps=2000, eval_every=50,
                            clean_pool=1024, lr=1e-4, warmup_steps=100, warmup_lr=1e-3),
    "tiny": Noise2AtomConfig(width=4, residual_blocks=1, critic_width=4, crop=48, batch=2, critic_steps=1,
                             steps=4, eval_every=2, clean_pool=8, frames=8),
}


def preset(name: str, **changes: Any) -> Noise2AtomConfig:
    """A named preset with ``changes`` applied (None values ignored)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return replace(PRESETS[name], **{k: v for k, v in changes.items() if v is not None})


@dataclass
class TrainedSeries:
    """Outcome of :func:`train_noise2atom`."""

    generator: Any
    scale: float
    gain_out: float
    offset_out: float
    steps: int
    best_step: int
    stopped: str
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    held_out: tuple[int, int] = (0, 1)
    frames_used: list[int] = field(default_factory=list)
    device: str = "cpu"
    clean_variance: tuple = (1.0, 10.0)  # as trained (after match_peak_width)
    warmup_sigma: float = 1.0


class Cancelled(Exception):
    """``should_stop`` asked the loop to stop: the job was cancelled."""


def input_scale(counts: np.ndarray) -> float:
    """Counts mapped to +1: the 99.9th percentile of the series (at least 1 count)."""
    return float(max(np.percentile(counts, 99.9), 1.0))


def clean_pool(config: Noise2AtomConfig, rng: np.random.Generator) -> np.ndarray:
    """Simulated clean images of seed 004's domain at the training crop size, in [-1, 1].

    The paper samples 75-150 positions on a 256 x 256 lattice and crops its central 128 x
    128; for other crop sizes the lattice is ``2 * crop`` and the position count is scaled
    with the area, so the density of peaks stays the paper's.
    """
    from emdenoise.simulate.stem import noise2atom_clean

    area = (2 * config.crop / 256) ** 2
    positions = (max(1, round(75 * area)), max(2, round(150 * area)))
    images = np.empty((config.clean_pool, config.crop, config.crop), np.float32)
    for i in range(config.clean_pool):
        image, _ = noise2atom_clean(rng, lattice=2 * config.crop, crop=config.crop, positions=positions,
                                    variance=tuple(config.clean_variance))
        images[i] = np.clip(image / CLEAN_SCALE, 0, 1) * 2 - 1
    return images


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random rotation by 90 degrees and flip of each item (over its last two axes)."""
    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        image = np.rot90(image, int(rng.integers(4)), axes=(-2, -1))
        out[i] = image[..., ::-1] if rng.random() < 0.5 else image
    return out


def _crops(frames: np.ndarray, n: int, crop: int, rng: np.random.Generator, *, channels: bool = False) -> np.ndarray:
    """``n`` random ``crop`` x ``crop`` crops of (T, Y, X) frames, or of (T, C, Y, X) with ``channels``."""
    t = rng.integers(len(frames), size=n)
    y = rng.integers(frames.shape[-2] - crop + 1, size=n)
    x = rng.integers(frames.shape[-1] - crop + 1, size=n)
    return np.stack([frames[ti, ..., yi : yi + crop, xi : xi + crop] for ti, yi, xi in zip(t, y, x)])


def warmup_targets(counts: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Warm-up targets of ``Ms2c`` in the clean domain's [-1, 1]: Gaussian-smoothed counts,
    the 99.9th percentile mapped to 3 atoms (of :data:`CLEAN_SCALE`)."""
    from scipy.ndimage import gaussian_filter

    smooth = np.stack([gaussian_filter(frame.astype(np.float64), sigma) for frame in counts])
    level = max(float(np.percentile(smooth, 99.9)), 1e-6)
    return (np.clip(smooth / level * 3.0 / CLEAN_SCALE, 0, 1) * 2 - 1).astype(np.float32)


def _pad_to(image, multiple: int):
    """Reflect-pad a (1, 1, H, W) tensor to multiples of ``multiple``; returns it and the crop."""
    from torch.nn import functional as F

    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), mode="reflect")
    return image, (h, w)


def restore_frames(generator, frames: np.ndarray, scale: float) -> np.ndarray:
    """``(tanh + 1) / 2`` of ``Ms2c`` on whole frames (counts in), float64 (T, Y, X)."""
    import torch

    generator.eval()
    device = next(generator.parameters()).device
    out = []
    with torch.no_grad():
        for frame in frames:
            x = torch.from_numpy(np.clip(frame / scale, 0, 1) * 2 - 1).float()[None, None].to(device)
            x, (h, w) = _pad_to(x, generator.multiple_of)
            out.append(((generator(x)[0, 0, :h, :w] + 1) * 0.5).double().cpu().numpy())
    generator.train()
    return np.stack(out)


def fit_output_map(restored: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares ``target ~ a * restored + b`` (a > 0): clean-domain intensity to counts."""
    x, y = restored.ravel(), target.ravel().astype(np.float64)
    vx = x.var()
    if vx <= 1e-12:
        return 1.0, float(y.mean())
    a = float(np.mean((x - x.mean()) * (y - y.mean())) / vx)
    a = max(a, 1e-6)
    return a, float(y.mean() - a * x.mean())


#: Share of each count that goes to the restored half in :func:`thinned_error`.
THINNING = 0.5


def thinned_error(generator, frames: np.ndarray, scale: float, seed: int = 0) -> float:
    """Restoration error of ``frames`` without clean data and without motion: Poisson thinning.

    Each count of a frame is kept in an input half with probability :data:`THINNING`,
    the rest forms the target half; for Poisson counts the halves are independent Poisson
    images of the *same* clean frame (binomial thinning). The input half is restored, mapped
    to counts by a least-squares fit against the target half, and scored with
    ``mean((f - T)^2) - mean(T)``, an unbiased estimate of the squared error against the
    target's clean image (the same estimator as the paired-frame error of issue 4, with
    nothing moving between the two). The input has half the dose the model was trained at,
    so the figure ranks snapshots of one training run; it is not the error at full dose.

    Parameters
    ----------
    generator : torch.nn.Module
        ``Ms2c``.
    frames : ndarray (T, Y, X)
        Held-out frames in counts (rounded to whole counts for the thinning).
    scale : float
        Input scale of the training run (:func:`input_scale`).
    seed : int
        Seeds the thinning, so every snapshot is scored on the same halves.

    Returns
    -------
    float
        Estimated mean squared error [counts^2 of the target half].
    """
    whole = np.rint(np.clip(frames, 0, None)).astype(np.int64)
    kept = np.random.default_rng(seed).binomial(whole, THINNING)
    target = (whole - kept).astype(np.float64)
    restored = restore_frames(generator, kept.astype(np.float64), scale)
    gain, offset = fit_output_map(restored, target)
    return float(np.mean((gain * restored + offset - target) ** 2) - target.mean())


def score_pair(generator, counts: np.ndarray, pair: tuple[int, int], scale: float) -> dict[str, float]:
    """CSS (seed 004 eq. 10), paired-frame and thinned error of the held-out consecutive pair.

    Each restoration is mapped to counts with the output map fitted against the *other*
    frame (whose noise is independent), so the error stays an unbiased estimate.
    """
    from emdenoise.metrics import SharedScaling, css, paired_frame_mse

    a, b = counts[pair[0]], counts[pair[1]]
    ra, rb = restore_frames(generator, np.stack([a, b]), scale)
    ga, oa = fit_output_map(ra, b)
    gb, ob = fit_output_map(rb, a)
    fa, fb = ga * ra + oa, gb * rb + ob
    scaling = SharedScaling.from_frames(np.stack([a, b]))
    error = 0.5 * (paired_frame_mse(fa, b) + paired_frame_mse(fb, a))
    correlation = float(np.corrcoef(ra.ravel(), b.ravel())[0, 1]) if ra.std() > 0 else 0.0
    return {"css": css(scaling(fa), scaling(fb)), "paired_mse": float(error),
            "thinned_mse": thinned_error(generator, np.stack([a, b]), scale),
            "correlation": correlation,
            "output_mean": float(ra.mean()), "output_std": float(ra.std())}


def gradient_penalty(critic, real, fake):
    """``E (1 - ||dD(y)/dy||_2)^2`` over ``y = u * real + (1 - u) * fake`` (seed 004 eq. 3-5)."""
    import torch

    u = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (u * real + (1 - u) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train_noise2atom(
    counts: np.ndarray,
    config: Noise2AtomConfig,
    *,
    held_out: tuple[int, int],
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainedSeries:
    """Train ``Ms2c`` on a series in counts (seed 004, Methods); see the module docstring.

    Parameters
    ----------
    counts : ndarray (T, Y, X)
        The whole series in counts; frames ``held_out`` are not trained on.
    config : Noise2AtomConfig
    held_out : (int, int)
        The consecutive pair scored with CSS and the paired-frame error.
    on_event : callable
        Called with ``{"kind": "progress", "step", "total_steps", "losses", "elapsed",
        "eta", ["css", "paired_mse", "thinned_mse"]}`` dictionaries.
    should_stop : callable
        Polled every step; True raises :class:`Cancelled`.

    Returns
    -------
    TrainedSeries
    """
    import torch

    from emdenoise.models.noise2atom import LowFrequency, Noise2AtomCritic, Noise2AtomUNet

    torch.set_num_threads(max(1, int(config.threads)))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    c = config
    t_count, height, width = counts.shape
    if min(height, width) < c.crop:
        raise UserError(f"frames of {width}x{height} px are smaller than the {c.crop} px training crop; use a smaller --crop.")
    train_idx = [t for t in range(t_count) if t not in held_out]
    chosen = sorted(rng.choice(train_idx, size=min(c.frames, len(train_idx)), replace=False).tolist())
    scale = input_scale(counts[chosen])
    noisy = (np.clip(counts[chosen] / scale, 0, 1) * 2 - 1).astype(np.float32)
    if c.match_peak_width:
        from emdenoise.train.peak_width import clean_variance_for

        variance = clean_variance_for(counts[chosen], tuple(c.clean_variance))
        if variance != tuple(c.clean_variance):
            c = replace(c, clean_variance=variance, warmup_sigma=round(math.sqrt(variance[1]), 3))
    guide = warmup_targets(counts[chosen], c.warmup_sigma) if c.warmup_steps else None
    on_event({"kind": "status", "message": f"simulating {c.clean_pool} clean Gaussian-peak images (seed 004 domain, "
                                           f"variance {c.clean_variance[0]:g}-{c.clean_variance[1]:g} px^2)"})
    clean = clean_pool(c, rng)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # a GPU when there is one
    ms2c = Noise2AtomUNet(c.width, c.depth, c.residual_blocks).to(device)
    mc2s = Noise2AtomUNet(c.width, c.depth, c.residual_blocks).to(device)
    critic = Noise2AtomCritic(c.crop, c.critic_width).to(device)
    ms2b = LowFrequency().to(device)
    opt_g = torch.optim.RMSprop(list(ms2c.parameters()) + list(mc2s.parameters()), lr=c.lr, momentum=c.momentum)
    opt_d = torch.optim.RMSprop(critic.parameters(), lr=c.lr, momentum=c.momentum)

    def noisy_batch(with_guide: bool = False):
        if not with_guide:
            return torch.from_numpy(_augment(_crops(noisy, c.batch, c.crop, rng), rng)[:, None]).to(device)
        pairs = _augment(_crops(np.stack([noisy, guide], axis=1), c.batch, c.crop, rng, channels=True), rng)
        return torch.from_numpy(pairs[:, :1].copy()).to(device), torch.from_numpy(pairs[:, 1:].copy()).to(device)

    def clean_batch():
        return torch.from_numpy(_augment(clean[rng.integers(len(clean), size=c.batch)], rng)[:, None]).to(device)

    def adversarial_step():
        """Seed 004's step: the critic 5 times, then both generators once (eq. 1-8)."""
        for p in critic.parameters():
            p.requires_grad_(True)
        for _ in range(c.critic_steps):
            s, real = noisy_batch(), clean_batch()
            with torch.no_grad():
                fake = ms2c(s)
            loss_d = critic(fake).mean() - critic(real).mean() + c.gp_lambda * gradient_penalty(critic, real, fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        for p in critic.parameters():
            p.requires_grad_(False)
        s, real = noisy_batch(), clean_batch()
        translated = ms2c(s)
        loss_gan = -critic(translated).mean()
        loss_lfc = (ms2b(s) - ms2b(mc2s(translated))).abs().mean()
        loss_cycle = (real - ms2c(mc2s(real))).abs().mean()
        loss = c.alpha * loss_gan + c.beta * loss_cycle + loss_lfc
        if c.identity:
            loss = loss + c.identity * (real - ms2c(real)).abs().mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        return loss_d, loss_gan, loss_cycle, loss_lfc, loss

    history: list[dict[str, Any]] = []
    best_error, best_state, best_step = math.inf, None, 0
    started = time.monotonic()
    stopped = "steps"
    step = 0
    report_every = max(1, min(c.eval_every, 10))
    for step in range(1, c.steps + 1):
        if should_stop():
            raise Cancelled()
        for group in opt_g.param_groups:
            group["lr"] = c.warmup_lr if step <= c.warmup_steps else c.lr
        if step <= c.warmup_steps:
            s, target = noisy_batch(with_guide=True)
            real = clean_batch()
            translated = ms2c(s)
            gap = translated - target
            loss_warm = (gap * gap).mean() if c.warmup_loss == "l2" else gap.abs().mean()
            loss_lfc = (ms2b(s) - ms2b(mc2s(translated))).abs().mean()
            loss_cycle = (real - ms2c(mc2s(real))).abs().mean()
            loss = loss_warm + c.beta * loss_cycle + loss_lfc
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            loss_d = loss_gan = torch.zeros((), device=device)
        else:
            loss_d, loss_gan, loss_cycle, loss_lfc, loss = adversarial_step()
        elapsed = time.monotonic() - started
        out_of_time = bool(c.max_seconds) and elapsed >= c.max_seconds
        last = step == c.steps or out_of_time
        if step % report_every == 0 or step % c.eval_every == 0 or last:
            remaining = (c.steps - step) * elapsed / step
            if c.max_seconds:
                remaining = min(remaining, max(c.max_seconds - elapsed, 0.0))
            event = {
                "kind": "progress", "step": step, "total_steps": c.steps, "elapsed": elapsed, "eta": remaining,
                "phase": "warm-up" if step <= c.warmup_steps else "adversarial",
                "losses": {"critic": loss_d.item(), "gan": loss_gan.item(), "cycle": loss_cycle.item(),
                           "lfc": loss_lfc.item(), "total": loss.item()},
            }
            if step % c.eval_every == 0 or last:
                event.update(score_pair(ms2c, counts, held_out, scale))
                history.append({k: event[k] for k in ("step", "elapsed", "css", "paired_mse", "thinned_mse")}
                               | event["losses"])
                if event["thinned_mse"] < best_error:
                    best_error, best_step = event["thinned_mse"], step
                    best_state = copy.deepcopy(ms2c.state_dict())
            on_event(event)
        if out_of_time:
            stopped = "time limit"
            break
    if best_state is not None:
        ms2c.load_state_dict(best_state)
    restored = restore_frames(ms2c, counts[chosen], scale)
    gain_out, offset_out = fit_output_map(restored, counts[chosen])
    return TrainedSeries(
        generator=ms2c.cpu().eval(), device=device.type, scale=scale, gain_out=gain_out, offset_out=offset_out, steps=step,
        best_step=best_step or step, stopped=stopped, seconds=time.monotonic() - started, history=history,
        held_out=tuple(held_out), frames_used=chosen, clean_variance=tuple(c.clean_variance),
        warmup_sigma=c.warmup_sigma,
    )

