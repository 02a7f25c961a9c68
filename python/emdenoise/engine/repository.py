"""Where models live: the packaged read-only repository plus writable user folders.

ARCHITECTURE.md, "Where models live": models packaged from ``export/`` and a user
directory (``$EMDENOISE_MODELS``, else the platform's user data dir). A user model whose
id is already taken is refused with a message rather than shadowing silently.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from pathlib import Path

import platformdirs

from emdenoise.engine.cards import CardError, ModelCard, load_card
from emdenoise.errors import ModelNotFound, UserError

log = logging.getLogger(__name__)


def bundled_models_dir() -> Path:
    """Folder of the models that ship with the package (``export/`` in the source tree)."""
    return Path(str(importlib.resources.files("emdenoise._bundled_models")))


def retired_models() -> dict[str, dict]:
    """``export/retired.json``: ids no longer shipped, each with its ``successor`` and ``reason``.

    ARCHITECTURE.md keeps ``export/`` within its budget by replacing models; recorded macros
    name ids, so a retired id must say what replaced it instead of just being unknown.
    """
    import json

    path = bundled_models_dir() / "retired.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def unknown_model_message(model_id: str, known: list[str] | None = None) -> str:
    """The sentence for an id that is not installed: its successor when it was retired, else
    where to look (and the ``known`` ids when given)."""
    retired = retired_models().get(model_id)
    if retired:
        return (f"model {model_id!r} was retired ({retired.get('reason', 'replaced')}); use "
                f"{retired['successor']!r} instead (recorded macros: change model={model_id} to "
                f"model={retired['successor']}).")
    if known is None:
        return f"unknown model {model_id!r}; run 'emdenoise models' to list them."
    return (f"unknown model {model_id!r}; run 'emdenoise models' to list them "
            f"(available: {', '.join(sorted(known)) or 'none'}).")


def user_models_dir() -> Path:
    """Writable folder for models trained on the user's data."""
    configured = os.environ.get("EMDENOISE_MODELS")
    if configured:
        return Path(configured)
    return Path(platformdirs.user_data_dir("emdenoise")) / "models"


class ModelRepository:
    """Index of model cards found in a list of folders (first folder wins an id).

    Parameters
    ----------
    folders : list of path-like, optional
        Folders holding model folders. Default: the bundled repository, then the user
        models folder.
    """

    def __init__(self, folders: list[str | Path] | None = None):
        if folders is None:
            folders = [bundled_models_dir(), user_models_dir()]
        self.folders = [Path(folder) for folder in folders]
        self.problems: list[str] = []
        self._cards: dict[str, ModelCard] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-scan the folders (models trained meanwhile appear)."""
        cards: dict[str, ModelCard] = {}
        problems = []
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for candidate in sorted(folder.iterdir()):
                if not (candidate / "card.json").is_file():
                    continue
                try:
                    card = load_card(candidate)
                except CardError as error:
                    problems.append(str(error))
                    continue
                if card.id in cards:
                    problems.append(
                        f"model {card.id} in {candidate} is ignored: the id is already taken by "
                        f"{cards[card.id].folder}; rename its folder and card id."
                    )
                    continue
                cards[card.id] = card
        for problem in problems:
            log.warning(problem)
        self._cards, self.problems = cards, problems

    def cards(self) -> list[ModelCard]:
        """All usable cards, sorted by id."""
        return [self._cards[key] for key in sorted(self._cards)]

    def get(self, model_id: str) -> ModelCard:
        """The card of ``model_id``; :class:`ModelNotFound` names the ids available."""
        try:
            return self._cards[model_id]
        except KeyError:
            raise ModelNotFound(unknown_model_message(model_id, list(self._cards))) from None

    def default_for(self, modality: str = "any", task: str = "denoise") -> ModelCard:
        """The card flagged ``default`` for ``modality`` (falls back to the general one)."""
        chosen = choose_default([card.raw for card in self.cards()], modality, task)
        return self._cards[chosen]


def choose_default(cards: list[dict], modality: str = "any", task: str = "denoise") -> str:
    """Id of the card flagged ``default`` for ``modality``, else the general (tem+stem) one.

    Works on plain card dictionaries so that clients of a remote server choose exactly as
    the server does.
    """
    for mode in dict.fromkeys([modality, "tem+stem", "any"]):
        for card in sorted(cards, key=lambda c: c.get("id", "")):
            if card.get("task") == task and card.get("default") and card.get("modality") == mode:
                return card["id"]
    raise UserError(f"no default {task} model for modality {modality!r}; pass --model ID.")
