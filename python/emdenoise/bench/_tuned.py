"""Tuned classical rows shared by ``bench ede`` and ``bench series`` (issue 17, item 1).

Seed 001 (sec. 4.1, Table 1) runs every classical filter with its library defaults (a 3x3
Gaussian, a 3x3 Wiener window, ...). Those rows reproduce the paper but are weak
baselines: a filter whose strength does not fit the dose says little about a network.
Here each row's one open parameter is chosen through :func:`emdenoise.tuning.tune` by a
criterion computed on data the scored instances never share (validation instances with
their own random stream in ``bench ede``; the first frame pairs, or the left halves, in
``bench series``), and the tuned filter then joins the table next to the paper's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from emdenoise.baselines.registry import BY_KEY, Baseline
from emdenoise.bench.methods import Method, classical_method
from emdenoise.tuning import GAUSSIAN_SIGMAS, VST_NLM_H, tune


@dataclass(frozen=True)
class TunedRow:
    """One classical filter with one parameter chosen on held-out data.

    Attributes
    ----------
    key : str
        Baseline key (:data:`emdenoise.baselines.registry.BY_KEY`) run with the chosen value.
    of : str
        Key of the fixed-parameter row it refines; ``--baselines`` keeps the tuned row
        when it keeps that row.
    param : str
        Name of the tuned keyword argument.
    grid : tuple
        Candidate values, ordered by increasing smoothing (``tune`` may stop early).
    label : str
        Row label with ``{}`` for the chosen value, e.g. ``"Gaussian (tuned: sigma {} px)"``.
    """

    key: str
    of: str
    param: str
    grid: tuple
    label: str

    @property
    def baseline(self) -> Baseline:
        """The registry entry the row runs."""
        return BY_KEY[self.key]

    def name(self, value: Any) -> str:
        """Row label for the chosen value."""
        return self.label.format(str(value))


#: Tuned rows of ``bench ede``: the cheap parameters of seed 001's filters (sec. 4.1). The
#: wavelet row is left out (BayesShrink estimates its own threshold), as are the bilateral,
#: Bregman and NLM rows (several coupled parameters, slow).
EDE_TUNED: tuple[TunedRow, ...] = (
    TunedRow("gaussian", "gaussian_3x3", "sigma", GAUSSIAN_SIGMAS, "Gaussian (tuned: sigma {} px)"),
    TunedRow("median_3x3", "median_3x3", "ksize", (3, 5), "Median (tuned: aperture {} px)"),
    TunedRow("wiener", "wiener", "mysize", (3, 5, 7, 9, 11, 15, 19), "Wiener (tuned: window {} px)"),
    TunedRow("tv_chambolle", "tv_chambolle", "weight", (0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.45),
             "Chambolle TV (tuned: weight {})"),
)

#: Tuned rows of ``bench series``: seed 001's and seed 003's cheap single-parameter filters.
SERIES_TUNED: tuple[TunedRow, ...] = EDE_TUNED + (
    TunedRow("low_pass", "low_pass", "cutoff",
             (0.5, 0.3, 0.2, 0.15, 0.1, 0.075, 0.05, 0.03, 0.02, 0.015, 0.01), "Low Pass Filter (tuned: cut-off {} /px)"),
    TunedRow("adaptive_wiener", "adaptive_wiener", "size", (5, 7, 9, 13, 17, 25, 35, 49),
             "Adaptive Wiener Filter (tuned: window {} px)"),
    TunedRow("vst_nlm", "vst_nlm", "h", VST_NLM_H, "VST + NLM (tuned: h {})"),
)


def select_rows(rows: Sequence[TunedRow], kept_keys: Sequence[str]) -> list[TunedRow]:
    """The tuned rows whose fixed row is among ``kept_keys`` (the keys ``--baselines`` kept)."""
    kept = set(kept_keys)
    return [row for row in rows if row.of in kept]


def tune_rows(rows: Sequence[TunedRow], error: Callable[[Callable[[np.ndarray], np.ndarray]], float],
              *, criterion: str) -> dict[str, dict[str, Any]]:
    """Choose each row's parameter by the lowest ``error`` through :func:`emdenoise.tuning.tune`.

    Parameters
    ----------
    rows : sequence of TunedRow
        Rows to tune.
    error : callable
        ``error(restore) -> float``, lower is better, where ``restore(frame) -> frame`` runs
        the filter with one candidate value; it must only see held-out data.
    criterion : str
        Name under which every candidate's score is recorded (e.g. ``"validation_mse"``).

    Returns
    -------
    dict
        ``{row.key: {row.param: value, "label": ..., "of": ..., criterion: {value: score}}}``.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        baseline = row.baseline
        found = tune(row.grid, lambda v: error(lambda frame: baseline(frame, **{row.param: v})), minimize=True)
        chosen[row.key] = {row.param: found.value, "label": row.name(found.value), "of": row.of,
                           criterion: {str(k): s for k, s in found.scores.items()}}
    return chosen


def tuned_methods(rows: Sequence[TunedRow], chosen: dict[str, dict[str, Any]]) -> list[Method]:
    """One classical :class:`Method` per tuned row, with the chosen value and its label."""
    methods = []
    for row in rows:
        if row.key in chosen:
            value = chosen[row.key][row.param]
            methods.append(classical_method(row.baseline, label=row.name(value), **{row.param: value}))
    return methods


def best_row(errors: dict[str, float]) -> tuple[str, float] | None:
    """``(name, error)`` of the lowest error among the tuned rows, or None when there are none."""
    if not errors:
        return None
    name = min(errors, key=errors.get)
    return name, errors[name]
