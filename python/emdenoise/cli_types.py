"""argparse value types shared by every verb (one sentence when a value is wrong)."""

from __future__ import annotations

import argparse
import json

from emdenoise.errors import UserError


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def tile_size(text: str) -> int:
    """argparse type: a tile side the engine accepts (see :func:`check_job_options`)."""
    return _checked(positive_int(text), "tile_size")


def gain(text: str) -> float:
    """argparse type: a detector gain the engine accepts (finite, in its range)."""
    return _checked(_number(text), "gain")


def offset(text: str) -> float:
    """argparse type: a finite detector offset."""
    return _checked(_number(text), "offset")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _checked(value, name: str):
    from emdenoise.engine.validation import check_job_options

    try:
        return check_job_options(**{name: value})[name]
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def key_value_settings(items: list[str], option: str, example: str) -> dict:
    """``KEY=VALUE`` options (repeatable) as a dict; values are JSON where they parse, else text.

    ``option`` and ``example`` name the flag in the message for an item without ``=``.
    """
    settings: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"{option} {item!r} must be KEY=VALUE, e.g. {option} {example}.")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value
    return settings
