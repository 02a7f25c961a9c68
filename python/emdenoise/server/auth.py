"""Who may talk to the server: TLS, a bearer token, and the rule for public addresses.

Trusted model servers (Triton, TorchServe) encrypt the channel and ask each call for a
token. ``emdenoise serve --tls-cert FILE --tls-key FILE --token-file FILE`` does the same:
the certificate makes gRPC speak TLS, and :class:`TokenInterceptor` checks the metadata
``authorization: Bearer <token>`` of every RPC (Health included) before the servicer sees it.
A server bound to an address other than loopback refuses to start without both, unless
``--insecure`` says the operator knows (:func:`check_exposure`).
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

import grpc

from emdenoise.credential_files import read_pem, read_token
from emdenoise.errors import UserError

def server_credentials(cert: Path | str, key: Path | str) -> grpc.ServerCredentials:
    """gRPC TLS credentials from a PEM certificate (chain) and its private key.

    Raises
    ------
    UserError
        Either file is unreadable or not PEM.
    """
    return grpc.ssl_server_credentials([(read_pem(key, "key"), read_pem(cert, "certificate"))])


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds to this machine only (``localhost``, 127.x, ``::1``)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_exposure(host: str, *, tls: bool, token: bool, insecure: bool) -> str | None:
    """Refuse, or warn about, a server others can reach without TLS and a token.

    Parameters
    ----------
    host : str
        The address the server binds (``--host``).
    tls, token : bool
        Whether a certificate and a token file were given.
    insecure : bool
        ``--insecure``: bind anyway.

    Returns
    -------
    str or None
        A warning to print, or None when the setup is safe.

    Raises
    ------
    UserError
        ``host`` is not loopback, TLS or the token is missing, and ``insecure`` is false.
    """
    if is_loopback(host) or (tls and token):
        return None
    missing = " and ".join(name for name, given in (("--tls-cert/--tls-key", tls), ("--token-file", token)) if not given)
    if not insecure:
        raise UserError(
            f"refusing to listen on {host} without {missing}: anyone on the network could use this server; "
            "add them (see README, 'Remote GPU'), bind --host 127.0.0.1, or pass --insecure on a trusted network."
        )
    return f"bound to {host} without {missing} (--insecure): anyone who can reach this port can use the server."


def _reject(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind that answers UNAUTHENTICATED with ``message``."""

    def deny(_request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, request_deserializer=handler.request_deserializer)
    return grpc.unary_unary_rpc_method_handler(deny, request_deserializer=handler.request_deserializer)


class TokenInterceptor(grpc.ServerInterceptor):
    """Answer UNAUTHENTICATED to every call without ``authorization: Bearer <token>``.

    Parameters
    ----------
    token : str
        The expected token; compared in constant time (:func:`hmac.compare_digest`).
    """

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        presented = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                presented = value.encode() if isinstance(value, str) else bytes(value)
        if presented is None:
            return _reject(handler, "this server needs a token: pass --token-file FILE (or set EMDENOISE_TOKEN) "
                                    "with the token its operator gave you.")
        if not hmac.compare_digest(presented, self._expected):
            return _reject(handler, "the server refused the token; check --token-file (or EMDENOISE_TOKEN) "
                                    "against the token file the server was started with.")
        return handler


__all__ = ["TokenInterceptor", "check_exposure", "is_loopback", "read_token", "server_credentials"]
