"""``emdenoise denoise IN... -o OUT --dask SCHEDULER``: one file per task on Dask workers.

The folder-run promises of ``denoise`` hold unchanged: outputs are planned before any
work (:func:`emdenoise.workflow.plan_many`), finished outputs are skipped, a bad file
fails alone with its sentence, and the summary and exit status are the same. Each task
runs :func:`emdenoise.workflow.denoise_planned` in a worker with an engine whose sessions
are cached per worker process, and writes its TIFF through a temporary file, so a worker
killed mid-file leaves no partial output under the final name: the same command run
again finishes the rest.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from emdenoise.errors import UserError
from emdenoise.workflow import Outcome, denoise_planned, plan_many

_CLIENTS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def _worker_client(connection: tuple):
    """The client a worker process uses for every file: embedded (cached sessions) or a server."""
    with _LOCK:
        client = _CLIENTS.get(connection)
        if client is None:
            server, models, device, tls_ca, token_file = connection
            if server:
                from emdenoise.client import connect

                client = connect(server, tls_ca=tls_ca, token_file=token_file)
            else:
                from emdenoise.client.embedded import EmbeddedClient
                from emdenoise.cluster.sessions import WorkerEngine

                client = EmbeddedClient(WorkerEngine(list(models) if models else None, device=device))
            _CLIENTS[connection] = client
        return client


def denoise_file_task(source: Path, target: Path, model_id: str, overwrite: bool, options: dict,
                      connection: tuple) -> Outcome:
    """What one Dask task does: denoise one planned file on this worker."""
    return denoise_planned(_worker_client(connection), source, target, model_id, overwrite, options)


def denoise_on_dask(client, driver, inputs: list[Path], output: Path, *, model_id: str | None, overwrite: bool,
                    connection: tuple, progress: bool = True, **options) -> list[Outcome]:
    """Denoise ``inputs`` into ``output`` with one task per file on ``client``'s workers.

    Parameters
    ----------
    client : distributed.Client
    driver
        An emdenoise client here (embedded or remote) that lists the models for planning.
    inputs, output, model_id, overwrite, **options
        As :func:`emdenoise.workflow.denoise_many`.
    connection : tuple
        ``(server or None, model folders or None, device, TLS CA file or None, token file or
        None)``: how workers run the models (the files must be readable on the workers).
    progress : bool
        One progress line on stderr.

    Returns
    -------
    list of Outcome
        In input order.
    """
    from distributed import as_completed

    options = dict(options, progress=False)
    planned = plan_many(driver, inputs, output, model_id=model_id, **options)
    outcomes: dict[int, Outcome] = {}
    futures = {}
    for index, (source, target, model) in enumerate(planned):
        if isinstance(target, UserError) or (target.exists() and not target.is_dir() and not overwrite):
            outcomes[index] = denoise_planned(driver, source, target, model, overwrite, options)  # fails/skips at once
            continue
        future = client.submit(denoise_file_task, source, target, model, overwrite, options, connection,
                               pure=False, key=f"emdenoise-file-{index}-{source.name}")
        futures[future] = index
    bar = None
    if progress and futures:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), unit="file", desc="denoise (dask)", file=sys.stderr, disable=None)
    for future in as_completed(futures):
        index = futures[future]
        outcomes[index] = _outcome(future, planned[index][0])
        future.release()  # a finished file is not recomputed when the worker holding its result dies
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes.values()), refresh=False)
    if bar is not None:
        bar.close()
    return [outcomes[index] for index in range(len(planned))]


def _outcome(future, source: Path) -> Outcome:
    """The task's Outcome, or a failed one naming what happened to its worker."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a worker's death or a bug must fail this file only
        name = type(error).__name__
        if name == "KilledWorker":
            detail = ("the Dask workers denoising it kept dying (out of memory, or killed); run the same command "
                      "again to finish it, or give the workers more memory")
        elif name in ("CancelledError", "FutureCancelledError"):
            detail = "the Dask scheduler cancelled it (workers or scheduler lost); run the same command again"
        else:
            detail = f"it failed on a Dask worker ({name}: {error}); run it again without --dask to see why"
        return Outcome(source, "failed", detail)
