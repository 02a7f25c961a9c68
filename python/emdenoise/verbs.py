"""Verbs declared in one line each and imported only when a command line names them.

The ``emdenoise`` parser lists every verb in ``--help`` but must not import the modules
behind them: ``bench`` alone pulls in every baseline's library (SciPy, scikit-image,
OpenCV), the likelihood verb SciPy, the client gRPC. A :class:`Verb` holds what the
listing needs (name and one-line help) and the dotted path of the function that adds the
verb's real parser; :class:`LazySubParsersAction` puts an empty placeholder under the
name and swaps in the real parser only when the verb is chosen (``emdenoise denoise
...``, ``emdenoise denoise --help``).

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tool")
>>> sub = add_verbs(parser, [Verb("version", "print the version", "emdenoise.verbs:_example")])
>>> parser.parse_args(["version", "--short"]).short
True
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Verb:
    """One verb of a command line, declared without importing its module.

    Parameters
    ----------
    name : str
        What the user types (``denoise``, ``bench``).
    help : str
        The one-line help ``--help`` lists; it must equal the help the loader gives the
        real parser (``tests/test_cli_startup.py`` checks every verb).
    loader : str
        ``"package.module:function"`` (``:register`` when omitted): called with the
        sub-parsers action, it adds the verb's parser, its arguments and
        ``set_defaults(func=...)``, the function that runs it. One loader may add several
        verbs (``compress`` and ``decompress``); declare each with the same loader.
    """

    name: str
    help: str
    loader: str

    def load(self):
        """Import and return the loader function."""
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function or "register")


class LazySubParsersAction(argparse._SubParsersAction):
    """Sub-parsers whose parsers are built on first use (see :class:`Verb`).

    ``argparse`` calls the action with the chosen verb's name before it parses the rest of
    the command line with that verb's parser: that is where the placeholder is replaced.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: dict[str, Verb] = {}

    def declare(self, verb: Verb) -> None:
        """List ``verb`` under its name; its module is imported when it is chosen."""
        self.add_parser(verb.name, help=verb.help)
        self._pending[verb.name] = verb

    def load(self, name: str) -> None:
        """Replace the placeholder for ``name`` (and its loader's other verbs) by the real parsers."""
        verb = self._pending.get(name)
        if verb is None:
            return
        names = [n for n, v in self._pending.items() if v.loader == verb.loader]
        order = list(self._name_parser_map)
        listing = list(self._choices_actions)
        for n in names:
            del self._pending[n]
            del self._name_parser_map[n]
        verb.load()(self)
        added = {action.dest: action for action in self._choices_actions[len(listing):]}
        missing = [n for n in names if n not in self._name_parser_map]
        if missing:
            raise RuntimeError(f"{verb.loader} did not add the verb(s) it is declared for: {', '.join(missing)}")
        # The listing and the choices keep their declared order; undeclared extras go last.
        self._choices_actions[:] = [added.pop(a.dest, a) if a.dest in names else a for a in listing]
        self._choices_actions.extend(added.values())
        parsers = dict(self._name_parser_map)
        self._name_parser_map.clear()
        self._name_parser_map.update({n: parsers.pop(n) for n in order if n in parsers})
        self._name_parser_map.update(parsers)

    def load_all(self) -> None:
        """Load every declared verb (for checks that compare declarations with parsers)."""
        while self._pending:
            self.load(next(iter(self._pending)))

    def __call__(self, parser, namespace, values, option_string=None):
        if values:
            self.load(values[0])
        super().__call__(parser, namespace, values, option_string)


def add_verbs(parser: argparse.ArgumentParser, verbs: Iterable[Verb], **kwargs) -> LazySubParsersAction:
    """Add sub-parsers to ``parser`` holding ``verbs``, each loaded on first use.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser that gets the verbs.
    verbs : iterable of Verb
        In the order ``--help`` lists them.
    **kwargs
        Passed to :meth:`argparse.ArgumentParser.add_subparsers` (``dest``, ``metavar``).

    Returns
    -------
    LazySubParsersAction
        The sub-parsers action; ``load(name)`` builds one verb's parser ahead of use.
    """
    action = parser.add_subparsers(action=LazySubParsersAction, **kwargs)
    for verb in verbs:
        action.declare(verb)
    return action


def _example(subparsers) -> None:
    """Loader used by the module's doctest."""
    p = subparsers.add_parser("version", help="print the version")
    p.add_argument("--short", action="store_true")
