"""The errors a file reader raises, shared by the dispatcher and every format module.

:mod:`emdenoise.io.reader` dispatches to :mod:`emdenoise.io.tiff` and
:mod:`emdenoise.io.em_formats`; both raise these, so they live here, below all three,
and no format module imports the reader back.
"""

from __future__ import annotations

from emdenoise.errors import InvalidInput, UserError


class InputNotFound(UserError):
    """The input path does not exist (gRPC NOT_FOUND)."""


class UnsupportedFormat(InvalidInput):
    """The file is of a format emdenoise does not read."""


class CorruptFile(InvalidInput):
    """The file has a supported format but cannot be parsed (truncated, damaged, mislabelled)."""


__all__ = ["CorruptFile", "InputNotFound", "UnsupportedFormat"]
