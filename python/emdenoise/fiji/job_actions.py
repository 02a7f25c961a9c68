"""The registry of job actions the Fiji bridge's worker runs, one line each.

A macro writes ``action=NAME`` into its job folder's request; the worker
(:func:`emdenoise.fiji.bridge.cmd_work`) runs ``ACTIONS[NAME](job, request)``. Each action
is declared here by the dotted path of its handler and imported only when a job asks for
it, so the bridge imports no feature module and no feature module imports the bridge:
handlers share what they need through :mod:`emdenoise.fiji.clients` (``server_of``) and
:mod:`emdenoise.fiji.jobdir`.

A handler takes the :class:`~emdenoise.fiji.jobdir.JobDir` and the request (a dict of
strings) and returns the fields of the ``done`` status (at least ``output``); it raises
:class:`~emdenoise.errors.UserError` for a sentence the macro shows. To add a command,
add one :class:`JobAction` line to :data:`ACTIONS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class JobAction:
    """One job action: its name in the request and the handler that runs it.

    Parameters
    ----------
    name : str
        The request's ``action`` value (``denoise``, ``compress``...).
    handler : str
        ``"package.module:function"``, imported when the action runs.
    """

    name: str
    handler: str

    def load(self):
        """Import and return the handler function."""
        module, _, function = self.handler.partition(":")
        return getattr(importlib.import_module(module), function)

    def __call__(self, job, request: dict[str, str]) -> dict[str, object]:
        return self.load()(job, request)


#: Every action a macro may ask for, by name.
ACTIONS = {
    action.name: action
    for action in (
        JobAction("denoise", "emdenoise.fiji.denoise_job:run_denoise"),  # EM Denoise
        JobAction("benchmark", "emdenoise.fiji.benchmark_job:run_benchmark"),  # EM Benchmark
        JobAction("likelihood", "emdenoise.likelihood.fiji_job:run_likelihood_job"),  # EM Likelihood Map (seed 003)
        JobAction("train", "emdenoise.fiji.train_job:run_train_job"),  # EM Train On Series (seed 004)
        JobAction("adapt", "emdenoise.fiji.adapt_job:run_adapt_job"),  # EM Train On Data (issue 18)
        JobAction("compress", "emdenoise.compress.fiji_job:run_compress_job"),  # EM Compress (seed 002)
        JobAction("decompress", "emdenoise.compress.fiji_job:run_decompress_job"),  # EM Decompress (seed 002)
        JobAction("open", "emdenoise.fiji.em_open:run_open_job"),  # EM Open (issue 21)
    )
}

__all__ = ["ACTIONS", "JobAction"]
