"""Where generated data may go: never into emdenoise's own source or installed package.

Data sets and checkpoints in a checkout end up committed by accident; in site-packages
they vanish with the next upgrade.
"""

from __future__ import annotations

from pathlib import Path

import emdenoise
from emdenoise.errors import UserError


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "python" / "emdenoise" / "__init__.py").is_file()


def generated_data_dir(out: str | Path, *, what: str) -> Path:
    """Resolve ``--out`` for generated ``what``; refuse emdenoise's checkout, package or a file.

    Parameters
    ----------
    out : path-like
        The folder the user asked for.
    what : str
        What will be written there ("checkpoints", "generated data"), for the message.
    """
    path = Path(out).expanduser().resolve()
    package = Path(emdenoise.__file__).resolve().parent
    inside = [package, *[folder for folder in (path, *path.parents) if _is_checkout(folder)]]
    if any(path == folder or folder in path.parents for folder in inside):
        raise UserError(f"--out {out} is inside the repository (emdenoise's source or installed package); write {what} elsewhere, e.g. /tmp/{path.name}.")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the {what}.")
    return path
