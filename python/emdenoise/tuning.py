"""Choosing a classical filter's parameter by a score: one module for benchmarks and ``classical-auto``.

A classical row is only an honest baseline when its parameter fits the data (seed 003,
sec. 5, tunes its baselines on validation images). The benchmarks score candidates by PSNR
against clean validation images; ``classical-auto`` and ``adapt`` score them by an error
estimate that needs no clean image (:mod:`emdenoise.adapt.scores`). Both go through
:func:`tune`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

#: Gaussian sigmas [px] tried by default: ratio ~1.2 between neighbours, so the best lies
#: within a few per cent of the optimum's error (the error is flat near its minimum).
GAUSSIAN_SIGMAS: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0, 2.4, 2.9, 3.5, 4.2,
                                      5.0, 6.0, 7.2, 8.6)
#: VST + NLM cut-offs (noise standard deviations after the Anscombe transform).
VST_NLM_H: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Tuned:
    """The chosen candidate and every candidate's score.

    Attributes
    ----------
    value : hashable
        The best candidate.
    score : float
        Its score.
    scores : dict
        ``{candidate: score}`` in the order tried.
    """

    value: Any
    score: float
    scores: dict = field(default_factory=dict)


def tune(candidates: Sequence[Hashable], score: Callable[[Any], float], *, minimize: bool = True,
         stop_after_worse: int | None = 3) -> Tuned:
    """Score candidates in order and keep the best.

    Parameters
    ----------
    candidates : sequence
        Parameter values, ordered (e.g. increasing blur).
    score : callable
        ``value -> float``; an error (``minimize=True``) or a quality such as PSNR.
    minimize : bool
        Lower scores are better.
    stop_after_worse : int or None
        Stop once this many candidates in a row scored worse than the best so far (the
        scores of an ordered smoothing parameter have one minimum); None tries them all.

    Returns
    -------
    Tuned

    Examples
    --------
    >>> tune([1, 2, 3, 4, 5], lambda v: (v - 3) ** 2).value
    3
    """
    if not candidates:
        raise ValueError("tune needs at least one candidate")
    sign = 1.0 if minimize else -1.0
    scores: dict = {}
    best, worse = None, 0
    for value in candidates:
        scores[value] = float(score(value))
        if best is None or sign * scores[value] < sign * scores[best]:
            best, worse = value, 0
        else:
            worse += 1
            if stop_after_worse is not None and worse >= stop_after_worse:
                break
    return Tuned(value=best, score=scores[best], scores=scores)
