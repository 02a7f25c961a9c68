"""``--dask SCHEDULER|local:N``: a Dask ``distributed`` client for the command line.

``local:N`` starts a :class:`distributed.LocalCluster` of N single-thread worker processes
for this run; anything else names a running scheduler (``tcp://host:8786``, ``host:8786``,
or a scheduler file ``*.json`` written by ``dask scheduler --scheduler-file`` or
dask-jobqueue).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator

from emdenoise.errors import UserError

LOCAL = re.compile(r"^local(?::(\d+))?$")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("--dask needs Dask's distributed scheduler; install it with: pip install 'emdenoise[dask]'.") \
            from None
    return distributed


@contextmanager
def dask_client(spec: str, *, memory_limit: str | int | None = None) -> Iterator:
    """Yield a ``distributed.Client`` for ``spec``; a local cluster is closed afterwards.

    Parameters
    ----------
    spec : str
        ``local`` or ``local:N`` (N worker processes, one thread each), a scheduler
        address, or a scheduler file (``.json``).
    memory_limit : str or int, optional
        Per-worker memory limit of a local cluster (Dask's default: the machine's memory
        shared equally).

    Raises
    ------
    UserError
        A malformed ``local:N``, or a scheduler that cannot be reached within 10 s.
    """
    distributed = _distributed()
    match = LOCAL.match(spec.strip())
    if match:
        workers = int(match.group(1) or max(os.cpu_count() or 1, 1))
        if workers < 1:
            raise UserError(f"--dask {spec}: give at least one worker, e.g. --dask local:2.")
        options = {"memory_limit": memory_limit} if memory_limit is not None else {}
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, **options) as cluster:
            with distributed.Client(cluster) as client:
                yield client
        return
    target = {"scheduler_file": spec} if spec.endswith(".json") else {"address": spec}
    try:
        client = distributed.Client(timeout="10s", **target)
    except (OSError, TimeoutError, ValueError) as error:
        raise UserError(f"cannot reach the Dask scheduler at {spec} ({error}); start one ('dask scheduler' and "
                        "'dask worker ADDRESS') or use --dask local:N.") from None
    with client:
        yield client
