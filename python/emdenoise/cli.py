"""The ``emdenoise`` command line.

Each verb lives in the module that owns it; the module exposes ``register(subparsers)``,
which adds its sub-parser and sets ``func`` (called with the parsed arguments, returning an
exit code). A verb joins the CLI by one line in :data:`VERBS` (name, one-line help,
``module:function`` of that register function): the module is imported only when the
verb is used, so ``emdenoise --help`` imports none of them (see :mod:`emdenoise.verbs`).
Errors a user can fix are raised as :class:`emdenoise.errors.UserError` and printed as one
sentence, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from emdenoise._version import __version__
from emdenoise.errors import UserError
from emdenoise.verbs import Verb, add_verbs

#: The verbs, in the order `emdenoise --help` lists them. Each help text must equal the
#: one its register function gives (tests/test_cli_startup.py checks them all).
VERBS = (
    Verb("denoise", "denoise TIFF/EM files or folders of them", "emdenoise.commands.denoise:register"),
    Verb("models", "list available models", "emdenoise.commands.models:register"),
    Verb("serve", "run the gRPC model server", "emdenoise.commands.serve:register"),
    Verb("demo", "denoise the bundled sample micrograph (embedded engine)", "emdenoise.commands.demo:register"),
    Verb("likelihood", "likelihood map: is each restored atom column supported by the raw counts?",
         "emdenoise.commands.likelihood:register"),
    Verb("compress", "store a stack as autoencoder latents (.emz), 1x-64x smaller",
         "emdenoise.commands.compress:register"),
    Verb("decompress", "restore an .emz file to a 32-bit TIFF (denoised by the autoencoder)",
         "emdenoise.commands.compress:register"),
    Verb("train-series", "train a Noise2Atom denoiser on your own STEM series (seed 004)",
         "emdenoise.commands.train_series:register"),
    Verb("adapt", "train a denoiser on your own frames (pair, series or single frame; self-supervised)",
         "emdenoise.commands.adapt:register"),
    Verb("train", "train a model from a named recipe (needs torch: pip install 'emdenoise[train]')",
         "emdenoise.train.cli:register"),
    Verb("export", "export a training checkpoint to ONNX + model card (needs torch), or attach benchmark metrics",
         "emdenoise.export.cli:register"),
    Verb("export-bioimageio",
         "write a model as a bioimage.io package (rdf.yaml, ONNX, test data); needs '.[bioimageio]'",
         "emdenoise.commands.bioimageio:register"),
    Verb("import-bioimageio", "install a bioimage.io ONNX model package into the user model folder",
         "emdenoise.commands.bioimageio:register"),
    Verb("bench", "benchmarks that print the seed papers' tables (ede, sbd, series)", "emdenoise.bench.cli:register"),
    Verb("simulate", "generate simulated training data (abTEM, Gaussian-peak STEM)", "emdenoise.simulate.cli:register"),
    Verb("fiji", "the EM commands in Fiji/ImageJ: install, uninstall, launch", "emdenoise.fiji.cli:register"),
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every verb declared; a verb's module loads when it is chosen."""
    parser = argparse.ArgumentParser(
        prog="emdenoise",
        description="Restore shot-noise-limited electron micrographs.",
    )
    parser.add_argument("--version", action="version", version=f"emdenoise {__version__}")
    add_verbs(parser, VERBS, dest="command", metavar="COMMAND")
    return parser


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
