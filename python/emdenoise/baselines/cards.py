"""Model cards that serve the classical baselines through the engine (``backend: classical``).

The cards in ``export/classical-*/card.json`` are generated from :data:`BASELINES` by

    python -m emdenoise.baselines.cards export/

and a test checks that the shipped files equal what this module generates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from emdenoise.baselines.registry import BASELINES, Baseline

_DOSE_NOTE = (
    "dose_range is null: a classical filter has no training dose. Seed 001 benchmarked "
    "its filters at 25 + Exp(75) and 200-2500 counts/px; seed 003 its baselines at "
    "0.45 counts/px in vacuum."
)


def card_for(baseline: Baseline) -> dict[str, Any]:
    """Return the card of one served baseline.

    Parameters
    ----------
    baseline : Baseline
        A baseline with a ``card_id``.

    Returns
    -------
    dict
        JSON-ready card: the engine calls ``REGISTRY[classical.function](frame,
        **classical.params)`` on the whole frame (``global: true``: min-max scaling,
        noise estimates and the Fourier filter all depend on the whole frame).
    """
    if baseline.card_id is None:
        raise ValueError(f"baseline {baseline.key} is not served as a model")
    params = dict(baseline.params)
    normalization = {"kind": "none"}
    if baseline.needs_counts:
        # The engine turns detector units into counts with the request's gain/offset
        # (1 and 0 when none are given) and back; the function itself then sees counts.
        params = {k: v for k, v in params.items() if k not in ("gain", "offset")}
        normalization = {
            "kind": "counts",
            "source": "seed 003, appendix D: the Anscombe VST assumes Poisson counts",
        }
    return {
        "id": baseline.card_id,
        "name": baseline.name,
        "version": "1",
        "task": "denoise",
        "backend": "classical",
        "classical": {
            "function": baseline.key,
            "params": params,
            "needs_counts": baseline.needs_counts,
        },
        "modality": "any",
        "default": baseline.default,
        "normalization": normalization,
        "global": True,
        "receptive_field": None,
        "tile": None,
        "dose_range": None,
        "source": baseline.source,
        "training_data": None,
        "metrics": dict(baseline.metrics),
        "notes": [*baseline.notes, _DOSE_NOTE],
    }


def all_cards() -> list[dict[str, Any]]:
    """Cards of every served classical baseline, in table order."""
    return [card_for(b) for b in BASELINES if b.card_id is not None]


def card_text(card: dict[str, Any]) -> str:
    """The exact text of a ``card.json`` file."""
    return json.dumps(card, indent=2) + "\n"


def write_cards(export_dir: str | Path) -> list[Path]:
    """Write ``<export_dir>/<card id>/card.json`` for every served baseline."""
    written = []
    for card in all_cards():
        folder = Path(export_dir) / card["id"]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "card.json"
        path.write_text(card_text(card), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_cards(sys.argv[1] if len(sys.argv) > 1 else "export"):
        print(p)
