"""Named training recipes: the papers' hyperparameters as defaults, plus CI smoke variants.

=================  ==========================================  =============================
recipe             model                                       source
=================  ==========================================  =============================
``sbd-unet``       SBD large-field UNet, 4 scales, width 32    seed 003, appendix C.1, C.4
``sbd-dncnn``      DnCNN, 20 layers x 64 channels              seed 003, appendix C.2, C.4
``sbd-smallunet``  DURR small UNet                             seed 003, appendix C.3, C.4
``ede-mlp``        kernel / MLP on a w x w input, distilled    seed 002, sec. 3
``ede-xception``   Ede atrous encoder-decoder (width x, 12      seed 001, sec. 2 and 3
                   middle blocks), low dose; ``--init`` a low-
                   dose checkpoint for the ordinary-dose tune
``ede-ae``         denoising autoencoder, 160x160 -> 20x20xd    seed 002, sec. 2
=================  ==========================================  =============================

The Ede recipes (tasks ``ede-denoise``/``ede-autoencode``, trained by
:func:`emdenoise.train.ede.train_ede`) read a simulated general-TEM corpus
(``data={"source": "corpus", "path": DIR}``, from ``emdenoise simulate tem-corpus``) and
noise it with Ede's law at ``data["dose"]`` ("low" or "ordinary"); their smoke variants
use synthetic lattices.

Every recipe has a ``full`` variant (the paper's settings; on a CPU shrink ``patch`` and
``steps`` from the command line and the card records what was used) and a ``smoke``
variant for CI: a few steps on a tiny problem, seconds on two cores, loss must fall.

SBD recipes train on the synthetic lattice stand-in unless given a simulated data set
(``data={"source": "shards", "path": DIR}``). The stand-in keeps the paper's flips and
rotations but resizes by 0.8-1.25 rather than 0.75-0.82: SBD shrank its simulations to
the real camera's pixel size, whereas the stand-in's test set (``emdenoise bench sbd``)
is drawn at the training scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emdenoise.errors import UserError

VARIANTS = ("full", "smoke")

#: Seed 003, sec. 4: one 0.025 s frame has 0.45 counts per pixel in vacuum.
SBD_DOSE = 0.45

#: Synthetic stand-in for SBD's white-contrast training subset; the same options as the
#: synthetic clean set of ``emdenoise bench sbd`` (bright columns at 1.5-2.5x vacuum).
LATTICE_OPTIONS = {"amplitude": [1.5, 2.5], "bright_fraction": 1.0}
LATTICE_SCALE = [0.8, 1.25]


@dataclass(frozen=True)
class Recipe:
    """Everything a training run needs; stored in every checkpoint and on the model card.

    Attributes
    ----------
    name, variant : str
    source : str
        The seed section the hyperparameters come from.
    model : dict
        ``{"family": ..., **kwargs}`` for :func:`emdenoise.models.build_model`.
    task : {"denoise", "distill"}
        Learn clean counts from noisy counts, or imitate ``teacher`` (seed 002, sec. 3.2).
    data : dict
        Pool description for :func:`emdenoise.train.data.make_pool`.
    patch, batch, steps : int
        Patch side, patches per step, optimisation steps.
    lr : float
        Starting learning rate (Adam).
    schedule : {"plateau", "quadratic"}
        SBD: halve on a validation-PSNR plateau; Ede: ``(1 - step/steps)^2 * lr``.
    patience : int
        Validations without improvement before the learning rate is halved ("plateau").
    early_stop : int
        Validations without improvement before training stops (0: never).
    val_every : int
        Steps between validations (and checkpoints).
    dose : float
        Vacuum counts per pixel of the clean images.
    augment : dict
        :class:`emdenoise.train.data.Augment` fields.
    teacher : str or None
        Model id whose outputs a ``distill`` recipe imitates.
    seed : int
    """

    name: str
    variant: str
    source: str
    model: dict
    task: str = "denoise"
    data: dict = field(default_factory=dict)
    patch: int = 400
    batch: int = 8
    steps: int = 20000
    lr: float = 1e-3
    schedule: str = "plateau"
    patience: int = 3
    early_stop: int = 10
    val_every: int = 200
    dose: float = SBD_DOSE
    augment: dict = field(default_factory=lambda: {"flips": True, "rotation_deg": 45.0, "scale": [0.75, 0.82]})
    teacher: str | None = None
    seed: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for checkpoints and cards)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Recipe":
        return cls(**values)


def _sbd(name: str, model: dict, source: str) -> dict[str, Recipe]:
    data = {"source": "lattice", "n_train": 256, "n_val": 8, "size": 256, "options": LATTICE_OPTIONS}
    augment = {"flips": True, "rotation_deg": 45.0, "scale": LATTICE_SCALE}
    full = Recipe(name=name, variant="full", source=source, model=model, data=data, augment=augment)
    smoke = dataclasses.replace(
        full,
        variant="smoke",
        data={**data, "n_train": 2, "n_val": 1, "size": 128},
        patch=64,
        batch=2,
        steps=8,
        val_every=8,
    )
    return {"full": full, "smoke": smoke}


def _ede(name: str) -> dict[str, Recipe]:
    # Seed 002 sec. 3.2: Adam, 10000 batches, lr 0.01 stepped down quadratically every
    # iteration; crops of at least w + 5 (here 2w + 5 so batches hold more valid pixels;
    # get_recipe adapts the crop to the chosen w unless a patch is given).
    full = Recipe(
        name=name,
        variant="full",
        source="seed 002, sec. 3 (kernels and MLPs); teacher: the shipped SBD UNet (seed 003)",
        model={"family": "ede-mlp", "size": 5, "hidden": 1},
        task="distill",
        data={"source": "lattice", "n_train": 32, "n_val": 4, "size": 256, "options": LATTICE_OPTIONS, "draws": 2},
        patch=15,
        batch=32,
        steps=10000,
        lr=0.01,
        schedule="quadratic",
        early_stop=0,
        val_every=500,
        augment={"flips": True, "rotation_deg": 0.0, "scale": [1.0, 1.0]},
        teacher="sbd-unet32-hrtem",
    )
    smoke = dataclasses.replace(
        full,
        variant="smoke",
        data={**full.data, "n_train": 1, "n_val": 1, "size": 64, "draws": 1},
        batch=8,
        steps=30,
        val_every=30,
    )
    return {"full": full, "smoke": smoke}


def _ede_net(name: str, model: dict, task: str, **fields: Any) -> dict[str, Recipe]:
    source = {"ede-denoise": "seed 001, sec. 2 (architecture) and sec. 3 (training)",
              "ede-autoencode": "seed 002, sec. 2 (autoencoders)"}[task]
    full = Recipe(name=name, variant="full", source=source, model=model, task=task, early_stop=0,
                  augment={"flips": True, "rotation_deg": 0.0, "scale": [1.0, 1.0]}, dose=0.0, **fields)
    smoke_data = {"source": "lattice", "n_train": 2, "n_val": 1, "size": 96, "dose": full.data["dose"]}
    small = {"width": 0.125, "middle": 1} if model["family"] == "ede-xception" else {"width": 16}
    smoke = dataclasses.replace(full, variant="smoke", data=smoke_data, model={**model, **small}, patch=min(full.patch, 64 if task == "ede-denoise" else 48),
                                batch=4, steps=30, val_every=30, lr=full.lr)
    return {"full": full, "smoke": smoke}


RECIPES: dict[str, dict[str, Recipe]] = {
    "sbd-unet": _sbd("sbd-unet", {"family": "sbd-unet", "width": 32, "scales": 4}, "seed 003, appendix C.1 and C.4"),
    "sbd-dncnn": _sbd("sbd-dncnn", {"family": "dncnn", "depth": 20, "width": 64}, "seed 003, appendix C.2 and C.4"),
    "sbd-smallunet": _sbd("sbd-smallunet", {"family": "durr-unet"}, "seed 003, appendix C.3 and C.4"),
    "ede-mlp": _ede("ede-mlp"),
    # Seed 001 sec. 3: 512x512 crops, batch 32 (here 128 px, batch 8 on a CPU), Adam lr 1e-3 beta1 0.5, stepped.
    "ede-xception": _ede_net(
        "ede-xception", {"family": "ede-xception", "width": 1.0, "middle": 12}, "ede-denoise",
        data={"source": "corpus", "path": "", "n_val": 2, "dose": "low", "freeze_bn": 0.1},
        patch=512, batch=32, steps=100000, lr=1e-3, schedule="stepped", val_every=500,
    ),
    # Seed 002 sec. 2.2: 160x160 crops, batch 32, Adam lr 0.01 quadratically stepped over 60000 batches.
    "ede-ae": _ede_net(
        "ede-ae", {"family": "ede-ae", "depth": 16, "width": 64}, "ede-autoencode",
        data={"source": "corpus", "path": "", "n_val": 2, "dose": "ordinary"},
        patch=160, batch=32, steps=60000, lr=0.01, schedule="quadratic-stepped", val_every=500,
    ),
}


def get_recipe(name: str, variant: str = "full", **overrides: Any) -> Recipe:
    """Look up a recipe and apply overrides.

    Parameters
    ----------
    name : str
        One of :data:`RECIPES`.
    variant : {"full", "smoke"}
    **overrides
        Recipe fields to replace; ``model``/``data``/``augment`` dicts are merged into the
        recipe's own.

    Raises
    ------
    UserError
        Unknown recipe, variant or field.
    """
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.")
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    recipe = RECIPES[name][variant]
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(f"recipe has no field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}.")
    merged = {}
    for key, value in overrides.items():
        if value is None:
            continue
        current = getattr(recipe, key)
        merged[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    recipe = dataclasses.replace(recipe, **merged)
    if recipe.task == "distill" and overrides.get("patch") is None:
        recipe = dataclasses.replace(recipe, patch=2 * int(recipe.model.get("size", 5)) + 5)
    return recipe
