"""How a client reaches a server that speaks TLS and asks for a token.

Every client (the CLI, the Python API, the Fiji commands) opens its channel here. The
settings come, first found wins, from:

1. explicit arguments (``--tls-ca FILE``, ``--token-file FILE``; ``RemoteClient(tls_ca=...,
   token_file=..., token=...)``);
2. the environment: ``EMDENOISE_TOKEN`` (the token itself), ``EMDENOISE_TOKEN_FILE``,
   ``EMDENOISE_TLS_CA``;
3. the settings saved for that address by EM Server Settings (:mod:`emdenoise.client.profiles`),
   which stores file paths, never the token.

A CA file makes the channel TLS (the server's certificate, or the CA that signed it); a
token travels as ``authorization: Bearer <token>`` on every call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from emdenoise.errors import UserError

TOKEN_ENV = "EMDENOISE_TOKEN"
TOKEN_FILE_ENV = "EMDENOISE_TOKEN_FILE"
TLS_CA_ENV = "EMDENOISE_TLS_CA"


@dataclass(frozen=True)
class Security:
    """What a channel needs: a CA for TLS (None: plaintext) and a token (None: no token).

    Attributes
    ----------
    tls_ca : Path or None
        PEM file of the server's certificate or of its CA.
    token : str or None
        The bearer token.
    """

    tls_ca: Path | None = None
    token: str | None = None

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None


def resolve(address: str | None = None, *, tls_ca: Path | str | None = None, token_file: Path | str | None = None,
            token: str | None = None, environ: dict | None = None) -> Security:
    """The security settings for ``address``: explicit, else environment, else saved.

    Parameters
    ----------
    address : str, optional
        ``host:port``; its saved settings (EM Server Settings) are the last resort.
    tls_ca, token_file, token : optional
        Explicit settings; ``token`` wins over ``token_file``.
    environ : dict, optional
        The environment (default ``os.environ``).

    Returns
    -------
    Security

    Raises
    ------
    UserError
        A token file that cannot be read or holds no token.
    """
    from emdenoise.credential_files import read_token

    environ = os.environ if environ is None else environ
    saved = {}
    if address and not (tls_ca and (token or token_file)):
        from emdenoise.client.profiles import saved_settings

        saved = saved_settings(address)
    tls_ca = tls_ca or environ.get(TLS_CA_ENV) or saved.get("tls_ca") or None
    if not token:
        token = environ.get(TOKEN_ENV, "").strip() or None
    if not token and not token_file:
        token_file = environ.get(TOKEN_FILE_ENV) or saved.get("token_file") or None
    if not token and token_file:
        token = read_token(token_file)
    return Security(tls_ca=Path(tls_ca).expanduser() if tls_ca else None, token=token)


#: Deadline of a call whose request and response are single messages (ListModels, CancelTraining...).
CALL_TIMEOUT = 300.0
#: Deadline of a streaming call (a stack to denoise, an upload, a training watched to its end).
STREAM_TIMEOUT = 24 * 3600.0


class _CallPolicy(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` and a deadline to every call of a channel.

    A call that names its own ``timeout`` keeps it; the others get ``call_timeout``
    (unary) or ``stream_timeout`` (anything streamed), so no call waits forever on a
    server that stopped answering.
    """

    def __init__(self, token: str | None, call_timeout: float | None, stream_timeout: float | None):
        self._header = ("authorization", f"Bearer {token}") if token else None
        self._timeouts = (call_timeout, stream_timeout)

    def _details(self, details, streamed: bool):
        metadata = list(details.metadata or ())
        if self._header:
            metadata.append(self._header)
        timeout = details.timeout if details.timeout is not None else self._timeouts[streamed]
        return _Details(details, metadata, timeout)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details, False), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details, True), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details, True), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details, True), requests)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, metadata, timeout):
        self.method = details.method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def open_channel(address: str, security: Security, *, call_timeout: float | None = CALL_TIMEOUT,
                 stream_timeout: float | None = STREAM_TIMEOUT) -> grpc.Channel:
    """A channel to ``address``: TLS when ``security`` has a CA, its token and a deadline on every call.

    Parameters
    ----------
    address : str
        ``host:port``.
    security : Security
        From :func:`resolve`.
    call_timeout, stream_timeout : float or None
        Seconds a unary or a streaming call may take when it names no timeout itself
        (None: no deadline).

    Raises
    ------
    UserError
        The CA file cannot be read or is not PEM.
    """
    if security.tls:
        from emdenoise.credential_files import read_pem

        credentials = grpc.ssl_channel_credentials(root_certificates=read_pem(security.tls_ca, "CA certificate"))
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _CallPolicy(security.token, call_timeout, stream_timeout))


__all__ = ["CALL_TIMEOUT", "STREAM_TIMEOUT", "Security", "TLS_CA_ENV", "TOKEN_ENV", "TOKEN_FILE_ENV", "open_channel", "resolve"]
