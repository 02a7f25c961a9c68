"""Put the EM commands into a Fiji.app or an ImageJ folder, and take them out again.

The commands are ImageJ macro files (``fiji-macros/emdenoise/``); copied into
``plugins/emdenoise/`` they appear under Plugins > emdenoise in ImageJ and Fiji alike.
Next to them the install records ``emdenoise.config``: the Python interpreter of the
environment that ran the install, which the macros start as
``python -m emdenoise.fiji.bridge`` (ARCHITECTURE.md, "Fiji side": commands reach
emdenoise through its client). The example lab macros go to ``macros/emdenoise/``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from emdenoise._version import __version__
from emdenoise.errors import UserError

FOLDER = "emdenoise"
CONFIG = "emdenoise.config"


def macros_source() -> Path:
    """Folder holding ``emdenoise/`` (the commands) and ``examples/``.

    Installed wheels carry it as ``emdenoise._fiji_macros``; a source checkout has it at
    ``fiji-macros/`` in the repository root.
    """
    if importlib.util.find_spec("emdenoise._fiji_macros") is not None:
        packaged = Path(str(importlib.resources.files("emdenoise._fiji_macros")))
        if (packaged / FOLDER).is_dir():
            return packaged
    checkout = Path(__file__).resolve().parents[3] / "fiji-macros"
    if (checkout / FOLDER).is_dir():
        return checkout
    raise UserError("the Fiji macros are missing from this emdenoise installation; reinstall emdenoise.")


def plugins_folder(target: str | Path) -> Path:
    """The ``plugins`` folder of a Fiji.app, an ImageJ folder, or a plugins folder itself."""
    target = Path(target).expanduser()
    if not target.is_dir():
        raise UserError(f"{target} is not a folder; pass the Fiji.app folder (the one that holds plugins/).")
    if (target / "plugins").is_dir():
        return target / "plugins"
    if target.name.lower() == "plugins":
        return target
    raise UserError(
        f"{target} has no plugins folder; pass the Fiji.app folder or an ImageJ folder that holds plugins/."
    )


@dataclass
class Installed:
    """Where an install put things."""

    commands: Path
    config: Path
    examples: Path | None
    command_names: list[str]


def install(target: str | Path, *, python: str | None = None) -> Installed:
    """Copy the EM commands into ``target`` and record how to reach this Python.

    Parameters
    ----------
    target : path-like
        A Fiji.app folder, an ImageJ folder (holding ``plugins/``) or a plugins folder.
    python : str, optional
        Interpreter the macros start; default: the one running this install.

    Returns
    -------
    Installed
    """
    source = macros_source()
    plugins = plugins_folder(target)
    commands = plugins / FOLDER
    _replace_folder(source / FOLDER, commands)
    config = commands / CONFIG
    config.write_text(
        "# written by 'emdenoise fiji install'; the EM commands start this Python\n"
        f"python={python or sys.executable}\n"
        f"version={__version__}\n",
        encoding="utf-8",
    )
    examples = None
    macros = plugins.parent / "macros"
    if macros.is_dir() and (source / "examples").is_dir():
        examples = macros / FOLDER
        _replace_folder(source / "examples", examples)
    names = sorted(p.stem.replace("_", " ") for p in commands.glob("*.ijm"))
    return Installed(commands=commands, config=config, examples=examples, command_names=names)


def uninstall(target: str | Path) -> list[Path]:
    """Remove what :func:`install` put into ``target``; returns the removed folders."""
    plugins = plugins_folder(target)
    removed = []
    commands = plugins / FOLDER
    if commands.is_dir():
        if not (commands / CONFIG).is_file():
            raise UserError(f"{commands} was not made by 'emdenoise fiji install'; remove it by hand if it is unwanted.")
        shutil.rmtree(commands)
        removed.append(commands)
    examples = plugins.parent / "macros" / FOLDER
    if examples.is_dir():
        shutil.rmtree(examples)
        removed.append(examples)
    return removed


def _replace_folder(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*~", ".*"))
