"""Write model cards next to exported graphs (ARCHITECTURE.md, "A model")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emdenoise._version import __version__
from emdenoise.engine.cards import file_sha256, load_card


def write_card(folder: str | Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as ``folder/card.json``, filling each graph's sha256 from its file.

    The card is re-read with :func:`emdenoise.engine.cards.load_card` so a card that the
    engine would refuse is never written silently.
    """
    folder = Path(folder)
    card = dict(card)
    card.setdefault("emdenoise_version", __version__)
    for spec in (card.get("graphs") or {}).values():
        spec["sha256"] = file_sha256(folder / spec["file"])
    path = folder / "card.json"
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    load_card(folder)
    return path


def install_model_folder(staging: str | Path, models_dir: str | Path, model_id: str) -> Path:
    """Copy a finished model folder to ``models_dir/model_id`` and rename it into place.

    A server scanning ``models_dir`` never sees half a model; an id taken meanwhile is
    refused, never replaced.
    """
    import os
    import shutil

    from emdenoise.errors import UserError

    models_dir = Path(models_dir)
    target = models_dir / model_id
    models_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise UserError(f"a model {model_id} appeared in {models_dir} while training; choose another --name.")
    incoming = models_dir / f".{model_id}.incoming"
    if incoming.exists():
        shutil.rmtree(incoming)
    shutil.copytree(staging, incoming)
    os.replace(incoming, target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def card_and_bench_result(folder: str | Path, bench_json: str | Path, unreadable: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card of ``folder`` and the benchmark result in ``bench_json``, to attach metrics.

    ``unreadable`` is the message (with ``{error}``) for a result file that cannot be read.
    """
    from emdenoise.errors import UserError

    card = json.loads((Path(folder) / "card.json").read_text(encoding="utf-8"))
    try:
        result = json.loads(Path(bench_json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(unreadable.format(error=error)) from None
    return card, result
