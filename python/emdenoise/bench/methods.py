"""Benchmark methods: classical baselines called directly, or any engine model by id."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from emdenoise.baselines.registry import BY_KEY, Baseline, table_baselines
from emdenoise.errors import UserError


@dataclass
class Method:
    """A denoiser under test, timing itself.

    Attributes
    ----------
    name : str
        Row label in the printed table.
    key : str
        Baseline key or engine model id.
    kind : {"classical", "engine"}
        How it runs.
    run : callable
        ``run(frame) -> frame``.
    seconds, megapixels : float
        Time spent inside ``run`` and pixels processed, for seconds per megapixel.
    """

    name: str
    key: str
    kind: str
    run: Callable[[np.ndarray], np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    megapixels: float = 0.0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = np.asarray(self.run(frame), dtype=np.float32)
        self.seconds += time.perf_counter() - start
        self.megapixels += frame.size / 1e6
        if out.shape != frame.shape:
            raise UserError(
                f"Method {self.name} returned shape {out.shape} for a {frame.shape} frame; "
                "only same-size denoisers can be benchmarked."
            )
        return out

    @property
    def seconds_per_megapixel(self) -> float:
        """Mean wall time per megapixel so far (NaN before the first call)."""
        return self.seconds / self.megapixels if self.megapixels else float("nan")


def classical_method(baseline: Baseline, *, label: str | None = None, **overrides: Any) -> Method:
    """Wrap a baseline with its paper parameters (updated by ``overrides``)."""
    params = {**baseline.params, **overrides}
    return Method(
        name=label or baseline.label,
        key=baseline.key,
        kind="classical",
        run=lambda frame: baseline.function(frame, **params),
        params=params,
    )


def select_baselines(table: str | Iterable[str], only: str | None) -> list[Baseline]:
    """Baselines of a table (``"ede"``, ``"sbd"``) or the given keys, filtered by ``only``.

    Parameters
    ----------
    table : str or iterable of str
        A paper's table, or baseline keys.
    only : str, optional
        Comma-separated keys to keep (``"none"`` keeps none); all when omitted.
    """
    chosen = table_baselines(table) if isinstance(table, str) else [BY_KEY[k] for k in table]
    if only is None:
        return chosen
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    if wanted == ["none"]:
        return []
    known = {b.key for b in chosen}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UserError(
            f"Unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))} or 'none'."
        )
    return [b for b in chosen if b.key in wanted]


def _card_ids(cards: Iterable[Any]) -> list[str]:
    ids = []
    for card in cards:
        if isinstance(card, dict):
            ids.append(str(card.get("id")))
        else:
            ids.append(str(getattr(card, "id", card)))
    return ids


def engine_methods(model_ids: Iterable[str], *, engine: Any = None) -> list[Method]:
    """One method per engine model id (``Engine().denoise(frame, model_id)``).

    Raises
    ------
    UserError
        When the engine is not part of this build or an id is not installed.
    """
    ids = list(model_ids)
    if not ids:
        return []
    if engine is None:
        try:
            from emdenoise.engine import Engine
        except ImportError as error:
            raise UserError(
                f"--method needs the emdenoise engine, which cannot be imported ({error}); "
                "benchmark the classical baselines only or install the full package."
            ) from error
        engine = Engine()
    installed = _card_ids(engine.list_cards())
    missing = [i for i in ids if i not in installed]
    if missing:
        raise UserError(
            f"No model with id {', '.join(missing)}; run `emdenoise models` to list the installed ids."
        )
    return [
        Method(name=i, key=i, kind="engine", run=lambda frame, _id=i: engine.denoise(frame, _id))
        for i in ids
    ]
