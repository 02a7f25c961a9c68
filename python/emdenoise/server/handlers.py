"""What the server's interceptors share: a method handler's behaviour and how to rebuild it."""

from __future__ import annotations

from typing import Callable

import grpc


def behaviour(handler: grpc.RpcMethodHandler) -> tuple[Callable, Callable]:
    """``(inner, make)``: the handler's function and the grpc factory that wraps a replacement.

    Interceptors wrap ``inner`` and rebuild the handler with
    ``make(wrapped, request_deserializer=..., response_serializer=...)``.
    """
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream, grpc.stream_stream_rpc_method_handler
    if handler.request_streaming:
        return handler.stream_unary, grpc.stream_unary_rpc_method_handler
    if handler.response_streaming:
        return handler.unary_stream, grpc.unary_stream_rpc_method_handler
    return handler.unary_unary, grpc.unary_unary_rpc_method_handler
