"""The EM commands' options: parsed from a macro's ``run(...)`` string, or asked in a dialog.

The fields, labels and recorder keys are those of the macro versions in
``fiji-macros/emdenoise/`` (issue 8), so ``run("EM Denoise", "model=... server=...")``
means the same whether the macro file or the in-process listener serves it, and the
Macro Recorder writes the same line for both.

Macro options are parsed with ImageJ's own ``ij.Macro.getValue`` (``key=value`` and
``key=[value with spaces]``), which needs no display; the dialog is an
``ij.gui.GenericDialog``, shown only when a user picks the command from the menu.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Field:
    """One dialog field. ``key`` is the first word of ``label``, lower-cased (ImageJ's rule)."""

    kind: str  # choice | string | number | checkbox
    label: str
    default: object
    choices: tuple[str, ...] = ()
    digits: int = 0
    units: str = ""
    width: int = 22

    @property
    def key(self) -> str:
        return self.label.split(" ")[0].split(":")[0].lower()


def choice(label: str, choices: Sequence[str], default: str) -> Field:
    return Field("choice", label, default, tuple(choices))


def string(label: str, default: str, width: int = 22) -> Field:
    return Field("string", label, default, width=width)


def number(label: str, default: float, digits: int = 0, units: str = "") -> Field:
    return Field("number", label, default, digits=digits, units=units)


def checkbox(label: str, default: bool = False) -> Field:
    return Field("checkbox", label, default)


def parse_macro_options(options: str, fields: Sequence[Field]) -> dict[str, object]:
    """Values of ``fields`` from a macro options string; absent keys keep their defaults.

    Parameters
    ----------
    options : str
        What ``ij.Macro.getOptions()`` returns for ``run("EM ...", options)``.
    fields : sequence of Field
        The command's fields.

    Returns
    -------
    dict
        ``key -> value``: str for choices and strings, float for numbers, bool for
        checkboxes (true when the key appears as a bare word).

    Raises
    ------
    UserError
        A number field holds something that is not a number.
    """
    from jpype import JClass

    from emdenoise.errors import UserError

    macro = JClass("ij.Macro")
    padded = options if options.endswith(" ") else options + " "
    values: dict[str, object] = {}
    for field in fields:
        if field.kind == "checkbox":
            values[field.key] = re.search(rf"(^|\s){re.escape(field.key)}(\s|$)", padded) is not None
            continue
        raw = macro.getValue(padded, field.key, None)
        if raw is None:
            values[field.key] = field.default
        elif field.kind == "number":
            try:
                values[field.key] = float(str(raw))
            except ValueError:
                raise UserError(f"{field.key}={raw} is not a number; give a number, e.g. {field.key}=0.") from None
        else:
            values[field.key] = str(raw).strip()
    return values


def ask(title: str, fields: Sequence[Field], message: str = "") -> dict[str, object] | None:
    """Show a GenericDialog for ``fields``; the values, or None when the user cancels.

    While the Macro Recorder runs, the dialog records each option under its key.
    """
    from jpype import JClass

    dialog = JClass("ij.gui.GenericDialog")(title)
    for field in fields:
        if field.kind == "choice":
            choices = list(field.choices)
            default = str(field.default) if str(field.default) in choices else choices[0]
            dialog.addChoice(field.label, choices, default)
        elif field.kind == "string":
            dialog.addStringField(field.label, str(field.default), field.width)
        elif field.kind == "number":
            dialog.addNumericField(field.label, float(field.default), field.digits, 8, field.units)
        else:
            dialog.addCheckbox(field.label, bool(field.default))
    if message:
        dialog.addMessage(message)
    dialog.showDialog()
    if dialog.wasCanceled():
        return None
    values: dict[str, object] = {}
    for field in fields:
        if field.kind == "choice":
            values[field.key] = str(dialog.getNextChoice())
        elif field.kind == "string":
            values[field.key] = str(dialog.getNextString()).strip()
        elif field.kind == "number":
            values[field.key] = float(dialog.getNextNumber())
        else:
            values[field.key] = bool(dialog.getNextBoolean())
    return values


def optional_number(value: object) -> float | None:
    """A gain or offset option: 0 (the dialog's default) means "estimate", i.e. None."""
    value = float(value)
    return None if value == 0 else value
