"""Lazy access to bioimageio.spec / bioimageio.core (the ``[bioimageio]`` extra), kept offline."""

from __future__ import annotations

import importlib
import os

from emdenoise.errors import UserError

INSTALL_HINT = "pip install 'emdenoise[bioimageio]'"


def offline_environment() -> None:
    """Tell bioimageio not to reach the network (no remote id lookups, no URL probes).

    Sets ``BIOIMAGEIO_PERFORM_IO_CHECKS`` only where the caller has not; local files are
    still hashed and read, which is what the checks of a package on disk need.
    """
    os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
    os.environ.setdefault("BIOIMAGEIO_LOG_WARNINGS", "false")


def require(module: str = "bioimageio.spec"):
    """Import ``module`` from the optional bioimage.io libraries, or say how to install them.

    Raises
    ------
    UserError
        The library is not installed.
    """
    offline_environment()
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"bioimage.io packages need {module.split('.')[0]}.{module.split('.')[1]}, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from None


def summary_failed(summary) -> list[str]:
    """One line per error in a bioimageio ``ValidationSummary`` (empty when it passed)."""
    lines = []
    for detail in summary.details:
        for error in detail.errors:
            location = ".".join(str(part) for part in error.loc)
            lines.append(f"{detail.name}: {location}: {error.msg}".strip())
    return lines
