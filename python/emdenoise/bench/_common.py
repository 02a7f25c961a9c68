"""Arguments and method lists shared by the ``bench`` sub-verbs."""

from __future__ import annotations

import argparse
from pathlib import Path

from emdenoise.bench.methods import Method, classical_method, engine_methods, select_baselines
from emdenoise.errors import UserError


def add_common(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """Options every sub-verb takes: output folder, seed, extra engine models, baselines."""
    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"folder for JSON, Markdown and PNG results (default: {default_out})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    parser.add_argument("--method", action="append", default=[], metavar="MODEL_ID",
                        help="add an installed model (any id from `emdenoise models`) as a method; repeatable")
    parser.add_argument("--baselines", default=None, metavar="KEYS",
                        help="comma-separated classical baselines to run (default: all of the table; 'none' for none)")


def build_methods(table, args: argparse.Namespace, **classical_overrides) -> list[Method]:
    """Classical methods of ``table`` (filtered by ``--baselines``) plus ``--method`` models."""
    methods = []
    for baseline in select_baselines(table, args.baselines):
        overrides = classical_overrides.get(baseline.key, {})
        methods.append(classical_method(baseline, **overrides))
    methods += engine_methods(args.method)
    if not methods:
        raise UserError("No methods to benchmark; drop '--baselines none' or add --method MODEL_ID.")
    return methods


def time_ratio_reference(methods: list[Method], preferred: str) -> Method:
    """The method timings are quoted against: ``preferred`` when present, else the first."""
    for m in methods:
        if m.key == preferred:
            return m
    return methods[0]
