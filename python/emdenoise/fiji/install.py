"""Put the EM commands into a Fiji.app or an ImageJ folder, and take them out again.

The commands are ImageJ macro files (``fiji-macros/emdenoise/``); copied into
``plugins/emdenoise/`` they appear under Plugins > emdenoise in ImageJ and Fiji alike.
Next to them the install records ``emdenoise.config``: the Python interpreter of the
environment that ran the install, which the macros start as
``python -m emdenoise.fiji.bridge`` (ARCHITECTURE.md, "Fiji side": commands reach
emdenoise through its client). The example lab macros go to ``macros/emdenoise/``.

Debian's ImageJ keeps its user folder in ``~/.imagej`` (``/usr/bin/imagej`` creates
``plugins/`` and ``macros/`` there at its first start and passes ``-ijpath ~/.imagej``);
an install into ``~/.imagej`` before that first start creates both folders itself.
:func:`batch_commands` gives the exact commands that run a lab macro with this install.
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


#: The ImageJ 1 jar of Debian's ``imagej`` package.
DEBIAN_IJ_JAR = Path("/usr/share/java/ij.jar")

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


#: Name of the per-user ImageJ folder of Debian's ``/usr/bin/imagej`` (``~/.imagej``).
DEBIAN_USER_FOLDER = ".imagej"


def plugins_folder(target: str | Path) -> Path:
    """The ``plugins`` folder of a Fiji.app, an ImageJ folder, or a plugins folder itself.

    A Debian ImageJ user folder (``~/.imagej``) gets ``plugins/`` and ``macros/`` when it
    lacks them, as ``/usr/bin/imagej`` would create them at its first start.
    """
    target = Path(target).expanduser()
    if target.name == DEBIAN_USER_FOLDER and not (target / "plugins").is_dir():
        try:
            (target / "plugins").mkdir(parents=True, exist_ok=True)
            (target / "macros").mkdir(exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create {target / 'plugins'} ({error.strerror}); "
                            "check the permissions of that folder.") from None
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
    examples: Path
    command_names: list[str]

    @property
    def root(self) -> Path:
        """The Fiji.app or ImageJ folder (the one holding ``plugins/``)."""
        return self.commands.parent.parent


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
    # ImageJ and Fiji look for macros in the folder beside plugins/: made when missing.
    examples = plugins.parent / "macros" / FOLDER
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


def batch_commands(done: Installed, *, python: str | None = None) -> dict[str, str]:
    """The exact commands that run ``Denoise_Folder.ijm`` in batch with this install.

    Parameters
    ----------
    done : Installed
        What :func:`install` returned.
    python : str, optional
        Interpreter that runs ``emdenoise`` (default: the one recorded by the install).

    Returns
    -------
    dict
        ``"emdenoise"``: ``emdenoise fiji launch --headless --fiji ROOT --batch MACRO
        --arg ARGS``, no display needed, the embedded engine unless ``server=`` is given;
        a macro that calls an unknown command or an EM command that fails ends the run
        with status 1. ``"imagej"`` (ImageJ 1 folders only): ImageJ's own ``-batch``
        with ``-ijpath ROOT``, so that it finds the EM commands; it needs a display
        (``xvfb-run``), and ImageJ itself still answers an unknown command with a dialog.
    """
    python = python or read_config(done.config).get("python") or sys.executable
    root = done.root
    macro = done.examples / "Denoise_Folder.ijm"
    args = "in=[/data/raw] out=[/data/denoised]"
    commands = {
        "emdenoise": f'{_quote(python)} -m emdenoise fiji launch --headless --fiji {_quote(root)} '
                     f'--batch {_quote(macro)} --arg "{args}"',
    }
    if not (root / "jars").is_dir():  # ImageJ 1: Debian's user folder or a folder holding ij.jar
        jar = root / "ij.jar" if (root / "ij.jar").is_file() else DEBIAN_IJ_JAR
        commands["imagej"] = (f'xvfb-run -a java -jar {_quote(jar)} -ijpath {_quote(root)} '
                              f'-batch {_quote(macro)} "{args}"')
    return commands


def read_config(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of ``emdenoise.config``."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _quote(path) -> str:
    import shlex

    return shlex.quote(str(path))


def _replace_folder(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*~", ".*"))
