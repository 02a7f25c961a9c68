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
