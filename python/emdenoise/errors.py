"""Errors a user can act on.

Everything that reaches a microscopist (CLI, Fiji dialog, gRPC status) is one sentence
that names the problem and what to do about it.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or settings, with the fix in its message."""

    exit_code = 2


class InvalidInput(UserError):
    """The image or request itself is unusable (shape, dtype, values)."""


class ModelNotFound(UserError):
    """No model with the requested id is installed."""


class ResourceExhausted(UserError):
    """The job needs more memory than the settings allow."""
