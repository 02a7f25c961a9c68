"""What EM Denoise's model chooser shows next to each id: modality, dose range, speed.

A dialog choice reads ``ede-kernel-stem-5 | STEM | any dose | fast``; :func:`model_id`
recovers the id (the text before the first ``" | "``), and the Macro Recorder is given the
bare id (:func:`recorded_options`), so a recorded line stays ``model=ede-kernel-stem-5``
whatever the card's details become. Macros called with options see bare ids as choices.
"""

from __future__ import annotations

import re
import statistics

SEPARATOR = " | "

#: Speed classes by the card's measured seconds per megapixel (median of its benchmarks).
SPEED_CLASSES = ((0.5, "fast"), (5.0, "medium"), (float("inf"), "slow"))


def _seconds_per_megapixel(card: dict) -> list[float]:
    """Every ``seconds_per_megapixel`` figure in the card's ``metrics`` (any depth)."""
    found: list[float] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "seconds_per_megapixel" and isinstance(value, (int, float)):
                    found.append(float(value))
                else:
                    walk(value)

    walk(card.get("metrics") or {})
    return found


def speed_class(card: dict) -> str:
    """``fast``, ``medium`` or ``slow`` from the card's benchmarks; ``speed ?`` without any.

    Examples
    --------
    >>> speed_class({"metrics": {"low": {"seconds_per_megapixel": 0.05}}})
    'fast'
    >>> speed_class({})
    'speed ?'
    """
    figures = _seconds_per_megapixel(card)
    if not figures:
        return "speed ?"
    typical = statistics.median(figures)
    return next(name for limit, name in SPEED_CLASSES if typical < limit)


def _count(value: float) -> str:
    """Counts per pixel for a label: two significant digits below 10, whole numbers above."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def dose_text(card: dict) -> str:
    """The card's dose range in electrons per pixel, as the dialog shows it.

    Examples
    --------
    >>> dose_text({"dose_range": [0.465, 0.614]})
    '0.47-0.61 e/px'
    >>> dose_text({"dose_range": [25, 2500]}), dose_text({"dose_range": [25, None]}), dose_text({"dose_range": None})
    ('25-2500 e/px', '>= 25 e/px', 'any dose')
    """
    low, high = (list(card.get("dose_range") or []) + [None, None])[:2]
    if low is None and high is None:
        return "any dose"
    if high is None:
        return f">= {_count(low)} e/px"
    if low is None:
        return f"<= {_count(high)} e/px"
    return f"{_count(low)}-{_count(high)} e/px"


def describe(card: dict) -> str:
    """``MODALITY | dose | speed`` of one card (the modality upper-cased, ``any`` for classical)."""
    modality = str(card.get("modality") or "any")
    return SEPARATOR.join((modality if modality == "any" else modality.upper(), dose_text(card), speed_class(card)))


def choice_label(card: dict) -> str:
    """The chooser's text for ``card``: its id, then :func:`describe`."""
    return card["id"] + SEPARATOR + describe(card)


def model_id(choice: str) -> str:
    """The model id of a chooser text (or of a bare id, or ``default``).

    Examples
    --------
    >>> model_id("ede-kernel-stem-5 | STEM | any dose | fast"), model_id("default")
    ('ede-kernel-stem-5', 'default')
    """
    return choice.split(SEPARATOR, 1)[0].strip()


_OPTION = re.compile(r"(\S+?)=\[([^\]]*)\]|(\S+?)=(\S*)|(\S+)")


def recorded_options(options: str, model: str) -> list[tuple[str, str | None]]:
    """The recorder's options with ``model=`` set to ``model``, as ``(key, value)`` pairs.

    A bare checkbox word has value None. Re-recording these pairs (``Recorder.recordOption``)
    after ``Recorder.resetCommandOptions`` gives the line ``run("EM Denoise", "model=ID ...")``.

    Examples
    --------
    >>> recorded_options("model=[ede-kernel-tem-7 | TEM | any dose | fast] output=[32-bit float] residual", "ede-kernel-tem-7")
    [('model', 'ede-kernel-tem-7'), ('output', '32-bit float'), ('residual', None)]
    """
    pairs: list[tuple[str, str | None]] = []
    for match in _OPTION.finditer(options):
        key = match.group(1) or match.group(3)
        if key is None:
            pairs.append((match.group(5), None))
            continue
        value = match.group(2) if match.group(1) else match.group(4)
        pairs.append((key, model if key == "model" else value))
    return pairs
