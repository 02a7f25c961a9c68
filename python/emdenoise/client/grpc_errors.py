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
    if code == grpc.StatusCode.UNAVAILABLE:
        return UserError(
            f"cannot reach the emdenoise server at {address}; start it with "
            f"'emdenoise serve --port {address.rsplit(':', 1)[-1]}' or leave the server unset to use the embedded engine."
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UserError(f"the emdenoise server at {address} did not answer in time; check that it is running.")
    if code == grpc.StatusCode.CANCELLED:
        return UserError("the job was cancelled.")
    return ERROR_OF.get(code, UserError)(error.details() or str(code))


__all__ = ["ERROR_OF", "user_error"]
