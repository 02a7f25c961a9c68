"""``emdenoise train RECIPE``: run a named recipe (needs the ``[train]`` extra: torch).

Examples::

    emdenoise train sbd-unet --smoke --out /tmp/unet-smoke
    emdenoise train sbd-unet --patch 128 --steps 1000 --max-minutes 20 --out /tmp/unet32
    emdenoise train sbd-unet --data /tmp/hrtem-sims --out /tmp/unet32-hrtem
    emdenoise train ede-mlp --size 7 --hidden 1 --teacher sbd-unet32-hrtem --out /tmp/mlp7
"""

from __future__ import annotations

import argparse
import json

from emdenoise.cli_types import positive_float, positive_int
from emdenoise.errors import UserError
from emdenoise.train.recipes import RECIPES, get_recipe


def register(subparsers) -> None:
    """Add the ``train`` verb."""
    p = subparsers.add_parser(
        "train",
        help="train a model from a named recipe (needs torch: pip install 'emdenoise[train]')",
        description="Train a recipe named after its paper; checkpoints go to --out and a rerun resumes.",
    )
    p.add_argument("recipe", metavar="RECIPE", choices=sorted(RECIPES), help=f"one of: {', '.join(sorted(RECIPES))}")
    p.add_argument("--out", required=True, help="checkpoint folder (outside the repository); resumes when it holds last.pt")
    p.add_argument("--smoke", action="store_true", help="the tiny CI variant: a few steps, seconds")
    p.add_argument("--no-resume", action="store_true", help="start afresh even when --out holds a checkpoint")
    p.add_argument("--data", metavar="DIR", help="simulated data set from 'emdenoise simulate hrtem' (default: synthetic lattices)")
    p.add_argument("--steps", type=positive_int, help="optimisation steps")
    p.add_argument("--batch", type=positive_int, help="patches per step")
    p.add_argument("--patch", type=positive_int, help="patch side in pixels (SBD: 400; smaller on a CPU)")
    p.add_argument("--lr", type=positive_float, help="starting learning rate")
    p.add_argument("--val-every", type=positive_int, help="steps between validations and checkpoints")
    p.add_argument("--n-train", type=positive_int, help="training images in the pool")
    p.add_argument("--seed", type=int, help="seed of initialisation and data")
    p.add_argument("--width", type=positive_float,
                   help="base channels (sbd-unet, ede-ae), channels (sbd-dncnn) or width multiplier (ede-xception)")
    p.add_argument("--middle", type=positive_int, help="ede-xception: middle-flow blocks (paper: 12)")
    p.add_argument("--depth", type=positive_int, help="ede-ae: latent depth d (seed 002: 1 to 64)")
    p.add_argument("--dose", type=_dose, metavar="low|ordinary|COUNTS",
                   help="ede-xception, ede-ae: Ede's dose law (seed 001, sec. 3.1); other recipes: counts/px of the "
                        "training images' vacuum (SBD: 0.45)")
    p.add_argument("--size", type=positive_int, help="ede-mlp: input side w (odd)")
    p.add_argument("--hidden", type=int, choices=(0, 1, 2), help="ede-mlp: hidden layers (0 = kernel)")
    p.add_argument("--teacher", metavar="MODEL_ID", help="ede-mlp: installed model to imitate")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from these weights (same architecture): a checkpoint, or a model folder with weights.npz "
                        "(e.g. the ordinary-dose fine-tune of a low-dose Ede network)")
    p.add_argument("--max-minutes", type=positive_float, help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.set_defaults(func=run)


def _dose(text: str) -> str | float:
    if text in ("low", "ordinary"):
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected low, ordinary or counts/px > 0, got {text!r}") from None


def recipe_from_args(args: argparse.Namespace):
    """The recipe ``args`` describe (named recipe, variant, command-line overrides)."""
    overrides = {
        "steps": args.steps, "batch": args.batch, "patch": args.patch, "lr": args.lr,
        "val_every": args.val_every, "seed": args.seed, "teacher": args.teacher,
    }
    model = {}
    if args.width is not None:
        if args.recipe not in ("sbd-unet", "sbd-dncnn", "ede-xception", "ede-ae"):
            raise UserError(f"--width applies to sbd-unet, sbd-dncnn, ede-xception and ede-ae, not {args.recipe}; drop it.")
        if args.recipe != "ede-xception" and args.width != int(args.width):
            raise UserError(f"--width is a number of channels for {args.recipe}; give a whole number.")
        model["width"] = args.width if args.recipe == "ede-xception" else int(args.width)
    for name, recipe in (("size", "ede-mlp"), ("hidden", "ede-mlp"), ("middle", "ede-xception"), ("depth", "ede-ae")):
        value = getattr(args, name)
        if value is not None:
            if args.recipe != recipe:
                raise UserError(f"--{name} applies to {recipe} only; drop it for {args.recipe}.")
            model[name] = value
    overrides["model"] = model or None
    data = {}
    if args.data:
        data = {"source": "shards", "path": str(args.data)}
    if isinstance(args.dose, str):
        if args.recipe not in ("ede-xception", "ede-ae"):
            raise UserError(f"--dose {args.dose} is Ede's law for ede-xception and ede-ae; give {args.recipe} counts/px instead.")
        data["dose"] = args.dose
    elif args.dose is not None:
        if args.recipe in ("ede-xception", "ede-ae"):
            raise UserError(f"{args.recipe} takes --dose low or ordinary (Ede's laws), not a number of counts.")
        overrides["dose"] = args.dose
    if args.n_train is not None:
        data["n_train"] = args.n_train
    overrides["data"] = data or None
    return get_recipe(args.recipe, "smoke" if args.smoke else "full", **overrides)


def run(args: argparse.Namespace) -> int:
    """Train and print a one-line JSON summary."""
    try:
        from emdenoise.train.loop import train
    except ImportError as error:
        raise UserError(f"training needs PyTorch ({error}); install it with: pip install 'emdenoise[train]'.") from None
    recipe = recipe_from_args(args)
    result = train(recipe, args.out, resume=not args.no_resume, max_minutes=args.max_minutes, threads=args.threads,
                   init=args.init)
    first = result.losses[: max(len(result.losses) // 10, 1)]
    last = result.losses[-max(len(result.losses) // 10, 1):]
    print(json.dumps({
        "recipe": recipe.name, "variant": recipe.variant, "steps": result.step, "stopped": result.stopped,
        "seconds": round(result.seconds, 1), "best_step": result.best_step,
        "best_val_psnr": max((h["val_psnr"] for h in result.history), default=None),
        "loss_first": sum(first) / len(first) if first else None, "loss_last": sum(last) / len(last) if last else None,
        "best": str(result.best), "last": str(result.out_dir / "last.pt"),
    }))
    return 0
