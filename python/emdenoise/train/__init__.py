"""Training: recipes named after the papers, the loop, resumable checkpoints (needs torch: the ``[train]`` extra).

>>> from emdenoise.train import get_recipe, train          # doctest: +SKIP
>>> result = train(get_recipe("sbd-unet", "smoke"), "/tmp/run")  # doctest: +SKIP
"""

from emdenoise.train.recipes import RECIPES, Recipe, get_recipe

__all__ = ["RECIPES", "Recipe", "get_recipe", "train"]


def train(*args, **kwargs):
    """See :func:`emdenoise.train.loop.train` (imported lazily: it needs torch)."""
    from emdenoise.train.loop import train as _train

    return _train(*args, **kwargs)
