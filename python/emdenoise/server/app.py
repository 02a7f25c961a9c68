"""Start, run and stop the gRPC model server (``emdenoise serve``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from emdenoise.engine import Engine
from emdenoise.errors import UserError
from emdenoise.credential_files import read_token
from emdenoise.server.auth import TokenInterceptor, check_exposure, server_credentials
from emdenoise.engine.batching import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY, BatchPolicy
from emdenoise.server.limits import IDLE_SECONDS, MAX_QUEUED, QUEUE_SECONDS, CallLimits, pool_size
from emdenoise.server.memory import Trimmer, limit_arenas, reuse_freed_memory
from emdenoise.server.service import DenoiserService, add_to_server

log = logging.getLogger(__name__)

SERVICE_NAME = "emdenoise.v1.Denoiser"


def create_server(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    max_streams: int = 16,
    max_parallel_frames: int = 2,
    max_frame_bytes: int | None = None,
    max_training_jobs: int = 1,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    token: str | None = None,
    idle_seconds: float | None = IDLE_SECONDS,
    data_root: Path | None = None,
    metrics=None,
    max_queued: int = MAX_QUEUED,
    queue_seconds: float = QUEUE_SECONDS,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Build a started gRPC server; returns it, the bound port and its health servicer.

    ``max_streams`` bounds concurrent RPCs; up to ``max_queued`` more wait for a place for at
    most ``queue_seconds``, and only calls beyond that queue are refused with RESOURCE_EXHAUSTED.
    ``max_parallel_frames`` bounds frames computed at once across all streams (with the
    engine's dynamic batching, ``max_parallel_frames * max_batch`` frames, whose windows
    share runs, :class:`~emdenoise.server.service.DenoiserService`).
    ``tls_cert``/``tls_key`` (PEM files) make it speak TLS; with ``token`` every call must
    carry ``authorization: Bearer <token>`` (:mod:`emdenoise.server.auth`). Health checks
    are answered outside ``max_streams``, and a client stream silent for ``idle_seconds``
    is dropped with DEADLINE_EXCEEDED (:mod:`emdenoise.server.limits`).
    """
    if (tls_cert is None) != (tls_key is None):
        raise UserError("give both --tls-cert and --tls-key (the certificate and its private key), or neither.")
    credentials = server_credentials(tls_cert, tls_key) if tls_cert else None
    interceptors = [metrics] if metrics is not None else []  # outermost: refused calls count too
    if token:
        interceptors.append(TokenInterceptor(token))
    limits = CallLimits(max_streams, idle_seconds=idle_seconds, trimmer=Trimmer(), max_queued=max_queued,
                        queue_seconds=queue_seconds)
    interceptors.append(limits)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=pool_size(max_streams, max_queued=max_queued),
                                   thread_name_prefix="emdenoise-rpc"),
        interceptors=interceptors,
    )
    server.emdenoise_limits = limits  # stop_within waits for its running calls, not for idle pool threads
    service_options = {"max_parallel_frames": max_parallel_frames}
    if max_frame_bytes:
        service_options["max_frame_bytes"] = max_frame_bytes
    service = DenoiserService(engine, **service_options)
    service.max_training_jobs = max(1, int(max_training_jobs))
    service.data_root = Path(data_root).resolve() if data_root else None  # training files clients may name
    if metrics is not None:
        service.on_frame = metrics.frames.inc
    service.training  # noqa: B018 -- jobs a previous server left unfinished are marked failed now
    add_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if credentials is not None:
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"could not listen on {host}:{port}; is another server using that port?")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, health_servicer


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    models: list[Path] | None = None,
    device: str = "auto",
    max_streams: int = 16,
    max_parallel_frames: int = 2,
    batch_size: int = 8,
    tile_size: int | None = None,
    max_frame_bytes: int | None = None,
    grace_seconds: float = 5.0,
    max_training_jobs: int = 1,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    token_file: Path | None = None,
    insecure: bool = False,
    idle_seconds: float | None = IDLE_SECONDS,
    data_root: Path | None = None,
    metrics_port: int | None = None,
    max_queued: int = MAX_QUEUED,
    queue_seconds: float = QUEUE_SECONDS,
    max_batch: int | None = None,
    max_queue_delay: float = DEFAULT_MAX_DELAY,
) -> None:
    """Serve until SIGINT/SIGTERM, then end the process within ``grace_seconds`` (:func:`stop_within`).

    Raises
    ------
    UserError
        ``host`` is not loopback and TLS or the token is missing without ``insecure``
        (:func:`emdenoise.server.auth.check_exposure`), or a TLS/token file is unusable.
    """
    limit_arenas(1)  # before the server's threads allocate: freed frames go back to the OS (server.memory)
    reuse_freed_memory()  # within a call, freed frame buffers are reused instead of faulted in again
    from emdenoise.shm.segments import sweep_stale

    stale = sweep_stale()  # shared-memory segments of clients killed before a server mapped them
    if stale:
        print(f"removed {len(stale)} shared-memory segment(s) left by ended clients", flush=True)
    warning = check_exposure(host, tls=tls_cert is not None, token=token_file is not None, insecure=insecure)
    token = read_token(token_file) if token_file else None
    if tls_cert is not None or tls_key is not None:
        if (tls_cert is None) != (tls_key is None):
            raise UserError("give both --tls-cert and --tls-key (the certificate and its private key), or neither.")
        server_credentials(tls_cert, tls_key)  # unreadable files fail before models load
    if data_root is not None and not Path(data_root).is_dir():
        raise UserError(f"--data-root {data_root} is not a folder; give the folder whose files clients may train on.")
    metrics = None
    if metrics_port is not None:
        from emdenoise.server.metrics import Metrics

        metrics = Metrics()
    if warning:
        print(f"warning: {warning}", flush=True)
    # idle ONNX Runtime threads sleep: spinning ones took the cores the transport needs (issue 20, item 3)
    engine = Engine(models, device=device, batch_size=batch_size, tile_size=tile_size, spinning=False)
    # Concurrent calls for one model share ONNX Runtime runs (issue 20, item 5; engine.batching), one
    # run of a model at a time (two at once lost ~15 % on ede-kernel-stem-5). Default: on with a GPU,
    # off on CPU, where ONNX Runtime's threads already fill the cores and stacking measured no gain
    # (16 clients: 0.90x for ede-kernel-stem-5 at 256^2, 0.83-0.95x for sim-vstunet32-stem-r2 at 128^2,
    # docs/benchmarks.md). Sessions are made on first use, so the policy applies to every model.
    if max_batch is None:
        max_batch = DEFAULT_MAX_BATCH if engine.device == "cuda" else 1
    policy = BatchPolicy(max_batch=max_batch, max_delay=max_queue_delay, instances=1)
    engine.batching = policy if policy.enabled else None
    server, bound, health_servicer = create_server(
        engine,
        host=host,
        port=port,
        max_streams=max_streams,
        max_parallel_frames=max_parallel_frames,
        max_frame_bytes=max_frame_bytes,
        max_training_jobs=max_training_jobs,
        tls_cert=tls_cert,
        tls_key=tls_key,
        token=token,
        idle_seconds=idle_seconds,
        data_root=data_root,
        metrics=metrics,
        max_queued=max_queued,
        queue_seconds=queue_seconds,
    )
    if metrics is not None:
        try:
            metrics_bound = metrics.serve(host, metrics_port)
        except OSError as error:
            server.stop(0)
            raise UserError(f"cannot serve metrics on {host}:{metrics_port} ({error.strerror or error}); choose another --metrics-port.") from None
        print(f"emdenoise metrics on http://{host}:{metrics_bound}/metrics", flush=True)
    stopping = threading.Event()

    signalled: list[float] = []

    def stop(signum, _frame):
        if not signalled:
            signalled.append(time.monotonic())  # the grace period counts from here
        log.info("signal %s: stopping", signum)
        health_servicer.enter_graceful_shutdown()
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    cards = engine.list_cards()
    print(
        f"emdenoise server listening on {host}:{bound} ({engine.device}, {len(cards)} models"
        f"{', TLS' if tls_cert else ''}{', token required' if token else ''})",
        flush=True,
    )
    for problem in engine.repository.problems:
        print(f"warning: {problem}", flush=True)
    # Wake up now and then: a SIGTERM the kernel hands to another thread (gRPC's, ONNX Runtime's) only
    # sets a flag, and its Python handler runs when this thread next runs bytecode; an untimed wait
    # never did, and the server ignored the signal (1 in ~12 stops in test_server_shutdown).
    while not stopping.wait(0.2):
        pass
    for model, counts in engine.batching_stats().items():
        print(f"dynamic batching, {model}: {counts['calls']} calls shared {counts['runs']} runs", flush=True)
    stop_within(server, grace_seconds, started=signalled[0] if signalled else None)


#: Share of the grace period (0.25 to 0.5 s) kept to flush and end the process, so that it is gone,
#: as seen from outside, before the grace period is over.
EXIT_MARGIN_SHARE = 0.1
#: Share of the grace period (at most WIND_DOWN_SECONDS) kept for cancelled calls to let go of the engine.
WIND_DOWN_SHARE = 0.25
WIND_DOWN_SECONDS = 1.0


def stop_within(server: grpc.Server, grace_seconds: float, *, started: float | None = None) -> None:
    """Stop the server and end the process within ``grace_seconds`` of ``started``.

    The whole shutdown fits in the grace period: new calls are refused at once; running
    calls may finish until ``grace_seconds`` minus a wind-down allowance (a quarter of the
    grace, at most 1 s), when gRPC cancels them and the engine, which asks
    ``cancelled()`` before each tile batch, lets go of their frames. The process then exits
    a margin (a tenth of the grace, 0.25 to 0.5 s) before the grace period ends, whatever
    still runs (one long classical filter cannot be interrupted). A watchdog outside Python
    (:func:`faulthandler.dump_traceback_later`) ends it half a margin later even if some
    extension held the interpreter lock throughout. This function never returns.

    Parameters
    ----------
    server : grpc.Server
        The started server.
    grace_seconds : float
        The ``--grace`` period, counted from ``started``.
    started : float, optional
        :func:`time.monotonic` when the stop signal arrived (default: now).
    """
    import faulthandler

    started = time.monotonic() if started is None else started
    grace = max(0.0, float(grace_seconds))
    margin = min(grace, max(0.25, min(0.5, EXIT_MARGIN_SHARE * grace)))
    exit_at = started + grace - margin
    if grace > 0:  # the backstop: half the margin later, from a thread that needs no interpreter lock
        faulthandler.dump_traceback_later(max(0.05, exit_at + margin / 2 - time.monotonic()), exit=True)
    cancel_at = started + grace - min(WIND_DOWN_SECONDS, WIND_DOWN_SHARE * grace)
    done = server.stop(max(0.0, cancel_at - time.monotonic()))
    done.wait(max(0.0, exit_at - time.monotonic()))
    limits = getattr(server, "emdenoise_limits", None)
    running = (lambda: limits.streams.active + limits.health.active) if limits is not None else (lambda: 0)
    while running() and time.monotonic() < exit_at:  # cancelled calls leaving the engine
        time.sleep(0.02)
    if running():
        log.warning("%d call(s) still computing at the end of the %g s grace period; exiting anyway", running(), grace)
    print(f"emdenoise server stopped after {time.monotonic() - started:.1f} s (grace {grace:g} s)", flush=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # interpreter teardown (ONNX Runtime sessions, gRPC) would not be bounded by the grace
