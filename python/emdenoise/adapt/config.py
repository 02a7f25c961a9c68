"""Settings of an ``emdenoise adapt`` run (no torch: the server checks them before a job starts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from emdenoise.errors import InvalidInput


@dataclass
class AdaptConfig:
    """Settings of one adapt run (``--set KEY=VALUE`` changes any of them).

    Attributes
    ----------
    width : int
        Channels of :class:`emdenoise.models.adapt_unet.AdaptUNet` at full resolution.
    depth : int
        Its number of poolings.
    family : {"adapt-unet", "vst-unet"}
        ``adapt-unet``: the U-Net on counts divided by the frames' mean; ``vst-unet``: the
        Anscombe-domain U-Net of the sim-trained models (set by ``--from`` such a model).
    crop, batch : int
        Training crop side (multiple of 8) and crops per step.
    lr, min_lr : float
        Adam's learning rate, annealed by a cosine over the run to ``min_lr``.
    steps, max_seconds : int, float
        The run ends at whichever comes first.
    eval_seconds : float
        Time between held-out evaluations (each may become the kept snapshot).
    threads : int
        Torch threads of the worker.
    seed : int
    thinning : (float, float)
        Range of the kept fraction ``p`` for the thinning method.
    mask_share : float
        Share of pixels per crop whose value the blind-spot method hides.
    ema : float
        Decay of the weight average that is evaluated and kept (noisy Noise2Noise
        gradients average out; warmed up as ``min(ema, (1 + step) / (10 + step))``).
    classical_nlm : bool
        Also tune VST + NLM for ``classical-auto`` (the pair and thinning methods).
    """

    width: int = 24
    depth: int = 3
    family: str = "adapt-unet"
    crop: int = 96
    batch: int = 8
    lr: float = 1e-3
    min_lr: float = 2e-5
    steps: int = 100_000
    max_seconds: float = 600.0
    eval_seconds: float = 30.0
    threads: int = 2
    seed: int = 0
    thinning: tuple = (0.5, 0.95)
    mask_share: float = 1 / 48
    ema: float = 0.995
    classical_nlm: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AdaptConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown adapt setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        config = cls(**values)
        config.thinning = tuple(config.thinning)
        if config.family not in ("adapt-unet", "vst-unet"):
            raise InvalidInput(f"family {config.family!r} is not known; use adapt-unet or vst-unet.")
        if not 2 <= int(config.depth) <= 5:
            raise InvalidInput(f"depth {config.depth} must be between 2 and 5 poolings.")
        multiple = 2 ** int(config.depth)
        if config.crop % multiple or config.crop < 4 * multiple:
            raise InvalidInput(f"crop {config.crop} must be a multiple of {multiple} and at least {4 * multiple}.")
        if not 0 < config.thinning[0] <= config.thinning[1] < 1:
            raise InvalidInput(f"thinning {list(config.thinning)} must be two fractions 0 < low <= high < 1.")
        return config

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["thinning"] = list(self.thinning)
        return values
