"""gRPC failures as the one-sentence user errors they stand for.

Shared by every remote call: :mod:`emdenoise.client.remote`, the training calls in
:mod:`emdenoise.client.training` and the compression calls in
:mod:`emdenoise.compress.calls` import it, so none of them imports another back.
"""

from __future__ import annotations

import grpc

from emdenoise.errors import InvalidInput, ModelNotFound, ResourceExhausted, UserError

#: Status codes whose details already are the user's sentence, by the error they raise.
ERROR_OF = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: ModelNotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def user_error(error: grpc.RpcError, address: str) -> UserError:
    """Turn a gRPC failure into the user error it stands for.

    Parameters
    ----------
    error : grpc.RpcError
        The failure of a call to the server at ``address``.
    address : str
        ``host:port``, named in the sentences that say how to reach the server.

    Returns
    -------
    UserError
        Of the class :data:`ERROR_OF` gives for the status code (``UserError`` otherwise).
    """
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and "WRONG_VERSION_NUMBER" in details:
        return UserError(
            f"the emdenoise server at {address} does not speak TLS; leave out --tls-ca (and EMDENOISE_TLS_CA) "
            "or ask its operator to start it with --tls-cert and --tls-key."
        )
    if code == grpc.StatusCode.UNAVAILABLE and "CERTIFICATE_VERIFY_FAILED" in details:
        return UserError(
            f"the TLS certificate of the emdenoise server at {address} is not trusted by --tls-ca; "
            "give the server's certificate (or the CA that signed it) and connect by a name or address it lists."
        )
    if code == grpc.StatusCode.UNAVAILABLE and "Socket closed" in details:
        return UserError(
            f"the emdenoise server at {address} closed the connection; it probably uses TLS: "
            "pass --tls-ca FILE with its certificate (or set EMDENOISE_TLS_CA)."
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UserError(details or f"the emdenoise server at {address} refused the call; give its token with --token-file.")
    if code == grpc.StatusCode.UNAVAILABLE:
        return UserError(
            f"cannot reach the emdenoise server at {address}; start it with "
            f"'emdenoise serve --port {address.rsplit(':', 1)[-1]}' or leave the server unset to use the embedded engine."
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and details and details != "Deadline Exceeded":
        return UserError(details)  # the server's own sentence (an idle stream it dropped)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UserError(f"the emdenoise server at {address} did not answer in time; check that it is running.")
    if code == grpc.StatusCode.CANCELLED:
        return UserError("the job was cancelled.")
    return ERROR_OF.get(code, UserError)(error.details() or str(code))


__all__ = ["ERROR_OF", "user_error"]
