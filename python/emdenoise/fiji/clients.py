"""Clients kept open for an ImageJ session: one per server address (and engine tile size).

A Python-launched ImageJ runs many commands in one process. Opening the embedded engine
or a gRPC channel once per address, instead of once per command, keeps ONNX sessions
loaded between images (STYLE.md: "models reloaded for every frame" is what users of
other plugins complain about). The macro commands' warm worker
(:mod:`emdenoise.fiji.session_worker`) does the same through :func:`keep_clients` and
:func:`job_client`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

EMBEDDED = "embedded"


def server_of(value: str | None) -> str | None:
    """``host:port``, or None for the embedded engine (empty, ``embedded`` or ``none``)."""
    value = (value or "").strip()
    return None if value.lower() in ("", EMBEDDED, "none") else value


class ClientPool:
    """Open clients by ``(server, tile)``; the embedded engine is ``server=None``."""

    def __init__(self):
        self._clients: dict[tuple[str | None, int | None], object] = {}
        self._lock = threading.Lock()
        #: Ids of the models that ran in this pool's embedded engine (their sessions are loaded).
        self.models_run: set[str] = set()

    def get(self, server: str | None = None):
        """The client for ``server`` (``host:port`` or None), opened on first use."""
        from emdenoise.client import connect

        server = server_of(server)
        with self._lock:
            client = self._clients.get(server)
            if client is None:
                client = connect(server)
                self._clients[server] = client
            return client

    def close(self) -> None:
        """Close every client (channels to servers; the embedded engine just goes)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


#: The pool scripts share unless they pass their own client.
default_pool = ClientPool()


#: The pool :func:`job_client` draws the embedded engine from; None: a fresh client per job.
_kept: ClientPool | None = None


def keep_clients(pool: ClientPool | None = None) -> ClientPool:
    """Keep the embedded engine open between jobs from now on (the warm worker calls this once).

    Parameters
    ----------
    pool : ClientPool, optional
        The pool to keep it in (default: a new one).

    Returns
    -------
    ClientPool
    """
    global _kept
    _kept = pool or ClientPool()
    return _kept


@contextmanager
def job_client(server: str | None):
    """The client a job uses: the kept embedded engine (models stay loaded), else a fresh one.

    Only the embedded engine is kept: a server keeps its own models, and a fresh channel
    picks up the address, TLS and token settings EM Server Settings saved meanwhile.
    The kept engine re-reads the model folders per job, so models trained meanwhile appear.

    Parameters
    ----------
    server : str or None
        ``host:port``, or None / ``embedded`` for the embedded engine.
    """
    from emdenoise.client import connect

    server = server_of(server)
    if server is None and _kept is not None:
        client = _kept.get(None)
        client.engine.repository.refresh()
        yield client
        return
    with connect(server) as client:
        yield client


def model_loaded(server: str | None, model_id: str) -> bool:
    """Whether ``model_id`` ran in the kept embedded engine before (its session is loaded then).

    Parameters
    ----------
    server : str or None
        The job's server (only the embedded engine is kept).
    model_id : str
    """
    return _kept is not None and server_of(server) is None and model_id in _kept.models_run


def note_model_run(server: str | None, model_id: str) -> None:
    """Record that ``model_id`` ran in the kept embedded engine (see :func:`model_loaded`)."""
    if _kept is not None and server_of(server) is None:
        _kept.models_run.add(model_id)
