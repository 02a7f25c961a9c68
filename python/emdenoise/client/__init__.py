"""Python client: used by the CLI, by pyimagej scripts and by macros.

``connect(None)`` gives the embedded engine (no server to start), ``connect("host:port")``
a running server; both return objects with ``list_models()`` and ``denoise(frames, ...)``.
"""

from __future__ import annotations

from emdenoise.client.embedded import EmbeddedClient
from emdenoise.client.job import DenoiseJob
from emdenoise.client.remote import RemoteClient


def connect(server: str | None = None, **engine_options):
    """A client for ``server`` (``host:port``), or the embedded engine when None."""
    if server:
        return RemoteClient(server)
    return EmbeddedClient(**engine_options)


__all__ = ["DenoiseJob", "EmbeddedClient", "RemoteClient", "connect"]
