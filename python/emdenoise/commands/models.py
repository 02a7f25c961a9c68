"""``emdenoise models``: list the models the engine or a server offers."""

from __future__ import annotations

import json

from emdenoise.commands.denoise import add_connection_arguments, client_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list available models")
    p.add_argument("--json", action="store_true", help="print the cards as JSON")
    add_connection_arguments(p)
    p.set_defaults(func=run)


def format_table(cards: list[dict]) -> str:
    """One line per model: id, task, backend, modality, default flag, dose range."""
    rows = [("id", "task", "backend", "modality", "default", "dose (counts/px)")]
    for card in cards:
        dose = card.get("dose_range")
        rows.append(
            (
                card["id"],
                card.get("task", ""),
                card.get("backend", ""),
                card.get("modality", ""),
                "yes" if card.get("default") else "",
                f"{dose[0]:g}-{dose[1]:g}" if dose else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def run(args) -> int:
    with client_from_args(args) as client:
        cards = client.list_models()
    print(json.dumps(cards, indent=2) if args.json else format_table(cards))
    return 0
