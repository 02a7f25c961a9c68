"""``emdenoise bench WHAT``: reproducible benchmark runs that print the papers' tables.

Each sub-verb lives in its own module exposing ``register(subparsers)``; a module joins by
being listed in :data:`SUBVERB_MODULES` (modules not present in a build are skipped).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

#: Modules that add ``bench`` sub-verbs, in the order ``emdenoise bench --help`` lists them.
SUBVERB_MODULES = (
    "emdenoise.bench.ede",
    "emdenoise.bench.sbd",
    "emdenoise.bench.series",
    "emdenoise.bench.autoencoders",
    "emdenoise.bench.engine",
    "emdenoise.bench.compress",
    "emdenoise.bench.adapt",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` verb and its sub-verbs."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks that print the seed papers' tables (ede, sbd, series)",
        description="Reproducible benchmarks: results go to JSON, Markdown and PNG files.",
    )
    sub = parser.add_subparsers(dest="bench_what", metavar="WHAT")
    for name in SUBVERB_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
    parser.set_defaults(func=lambda args: _missing_what(parser))


def _missing_what(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
