"""Clients kept open for an ImageJ session: one per server address (and engine tile size).

A Python-launched ImageJ runs many commands in one process. Opening the embedded engine
or a gRPC channel once per address, instead of once per command, keeps ONNX sessions
loaded between images (STYLE.md: "models reloaded for every frame" is what users of
other plugins complain about).
"""

from __future__ import annotations

import threading

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
