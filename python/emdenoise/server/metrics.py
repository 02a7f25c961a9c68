"""Prometheus metrics of the server (``emdenoise serve --metrics-port N``).

Exposed at ``http://HOST:N/metrics`` from a registry of this server alone:

- ``emdenoise_requests_total{method}``: calls received (refused ones included);
- ``emdenoise_errors_total{method,code}``: calls that ended with a status other than OK;
- ``emdenoise_request_seconds{method}``: call duration (histogram);
- ``emdenoise_in_flight{method}``: calls running now;
- ``emdenoise_frames_total``: frames denoised.

Needs ``prometheus_client`` (in the ``[server]`` and ``[dev]`` extras); the server runs
without it when no metrics port is asked for.
"""

from __future__ import annotations

import time

import grpc

from emdenoise.errors import UserError
from emdenoise.server.handlers import behaviour

#: Latency buckets (s): a health check to a long stack.
BUCKETS = (0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class Metrics(grpc.ServerInterceptor):
    """Counts every call; :meth:`serve` exposes the figures over HTTP.

    Raises
    ------
    UserError
        ``prometheus_client`` is not installed.
    """

    def __init__(self):
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            raise UserError("--metrics-port needs prometheus_client: pip install 'emdenoise[server]'.") from None
        self.registry = CollectorRegistry()
        self.requests = Counter("emdenoise_requests", "gRPC calls received", ["method"], registry=self.registry)
        self.errors = Counter("emdenoise_errors", "gRPC calls ended with a status other than OK", ["method", "code"],
                              registry=self.registry)
        self.latency = Histogram("emdenoise_request_seconds", "gRPC call duration", ["method"], buckets=BUCKETS,
                                 registry=self.registry)
        self.in_flight = Gauge("emdenoise_in_flight", "gRPC calls running", ["method"], registry=self.registry)
        self.frames = Counter("emdenoise_frames", "frames denoised", registry=self.registry)

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint; returns its port (``port`` 0 picks a free one)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server.server_port

    def _finished(self, method: str, started: float, context, failed: BaseException | None) -> None:
        self.latency.labels(method).observe(time.monotonic() - started)
        self.in_flight.labels(method).dec()
        code = context.code()
        if code is None and failed is not None:
            code = grpc.StatusCode.UNKNOWN
        if code is not None and code != grpc.StatusCode.OK:
            self.errors.labels(method, code.name).inc()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner, make = behaviour(handler)

        def begin():
            self.requests.labels(method).inc()
            self.in_flight.labels(method).inc()
            return time.monotonic()

        if handler.response_streaming:
            def behavior(request, context):
                started, failed = begin(), None
                try:
                    yield from inner(request, context)
                except BaseException as error:
                    failed = error
                    raise
                finally:
                    self._finished(method, started, context, failed)
        else:
            def behavior(request, context):
                started, failed = begin(), None
                try:
                    return inner(request, context)
                except BaseException as error:
                    failed = error
                    raise
                finally:
                    self._finished(method, started, context, failed)

        return make(behavior, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)


__all__ = ["BUCKETS", "Metrics"]
