"""Python client: used by the CLI, by pyimagej scripts and by macros.

``connect(None)`` gives the embedded engine (no server to start), ``connect("host:port")``
a running server; both return objects with ``list_models()`` and ``denoise(frames, ...)``.
"""

from __future__ import annotations

from emdenoise.client.embedded import EmbeddedClient
from emdenoise.client.job import DenoiseJob
from emdenoise.client.remote import RemoteClient


def connect(server: str | None = None, *, tls_ca=None, token_file=None, shared_memory=None, **engine_options):
    """A client for ``server`` (``host:port``), or the embedded engine when None.

    ``tls_ca`` and ``token_file`` secure the connection to a server (see
    :class:`RemoteClient`); without them the environment and saved settings apply.
    ``shared_memory`` (``"auto"``, ``"on"``, ``"off"``; default ``$EMDENOISE_SHARED_MEMORY``
    or ``"auto"``) says whether frames for a server on this machine go through shared memory.
    """
    if server:
        return RemoteClient(server, tls_ca=tls_ca, token_file=token_file, shared_memory=shared_memory)
    return EmbeddedClient(**engine_options)


__all__ = ["DenoiseJob", "EmbeddedClient", "RemoteClient", "connect"]
