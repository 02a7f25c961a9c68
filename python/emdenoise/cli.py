"""The ``emdenoise`` command line.

Each verb lives in the module that owns it; a module joins the CLI by exposing
``register(subparsers)``, which adds its sub-parser and sets ``func`` (called with the
parsed arguments, returning an exit code). Errors a user can fix are raised as
:class:`emdenoise.errors.UserError` and printed as one sentence, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from emdenoise._version import __version__
from emdenoise.errors import UserError

# Modules that add verbs, in the order `emdenoise --help` lists them.
_COMMAND_MODULES = (
    "emdenoise.commands.denoise",
    "emdenoise.commands.models",
    "emdenoise.commands.serve",
    "emdenoise.commands.demo",
    "emdenoise.commands.likelihood",
    "emdenoise.commands.compress",
    "emdenoise.commands.train_series",
    "emdenoise.commands.adapt",
    "emdenoise.train.cli",
    "emdenoise.export.cli",
    "emdenoise.bench.cli",
    "emdenoise.simulate.cli",
    "emdenoise.fiji.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every available verb registered."""
    parser = argparse.ArgumentParser(
        prog="emdenoise",
        description="Restore shot-noise-limited electron micrographs.",
    )
    parser.add_argument("--version", action="version", version=f"emdenoise {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        if not _module_exists(name):
            continue  # a verb whose module is not part of this build yet
        importlib.import_module(name).register(subparsers)
    return parser


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is absent
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"emdenoise: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("emdenoise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
