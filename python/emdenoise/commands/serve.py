"""``emdenoise serve``: the gRPC model server."""

from __future__ import annotations

import logging
from pathlib import Path

from emdenoise import cli_types
from emdenoise.engine.repository import bundled_models_dir, user_models_dir


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the gRPC model server")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=50051, help="port (0: pick a free one and print it)")
    p.add_argument("--models", type=Path, action="append", metavar="DIR", help="model folder (repeatable); default: bundled + user models")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--max-streams", type=int, default=16, help="concurrent client streams")
    p.add_argument("--max-queued", type=int, default=32, metavar="N",
                   help="streams beyond --max-streams that wait for a place instead of being refused (0: refuse at once)")
    p.add_argument("--queue-timeout", type=float, default=60.0, metavar="S",
                   help="longest wait of a queued stream before it is refused as busy")
    p.add_argument("--max-parallel-frames", type=int, default=2,
                   help="frames computed at once (times --max-batch when batching: their tiles share runs)")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="most tiles of concurrent requests for one model stacked into one run "
                        "(default: 8 on CUDA; 1, no batching, on CPU, where it measured no gain)")
    p.add_argument("--max-queue-delay-ms", type=float, default=2.0, metavar="MS",
                   help="longest wait of a tile for others to share its run (dynamic batching)")
    p.add_argument("--batch-size", type=int, default=8, help="tiles per inference call")
    p.add_argument("--tile-size", type=cli_types.tile_size,
                   help="largest tile side (default: chosen per frame, whole frames when they fit "
                        "$EMDENOISE_MEMORY_BUDGET_MB; same output either way)")
    p.add_argument("--max-frame-mib", type=int, default=512, help="largest frame accepted, in MiB (bounds memory per stream)")
    p.add_argument("--max-training-jobs", type=int, default=1, help="Noise2Atom training jobs at once (train-series)")
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate: speak TLS (with --tls-key)")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key of --tls-cert")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="file holding a token every client must send (authorization: Bearer)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without TLS and token (prints a warning)")
    p.add_argument("--idle-timeout", type=float, default=120.0, metavar="S",
                   help="drop a client stream that sends nothing for S seconds mid-upload (0: never)")
    p.add_argument("--grace", type=float, default=5.0, metavar="S",
                   help="on SIGTERM/SIGINT: stop accepting, let running calls finish for S seconds, then exit")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="folder whose files clients may name for training (train-series --server-path); default: none")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics at http://HOST:N/metrics (needs prometheus_client)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)


def run(args) -> int:
    from emdenoise.server.app import serve

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = args.models
    if models:
        models = [bundled_models_dir(), user_models_dir(), *models]
    serve(
        host=args.host,
        port=args.port,
        models=models,
        device=args.device,
        max_streams=args.max_streams,
        max_parallel_frames=args.max_parallel_frames,
        batch_size=args.batch_size,
        tile_size=args.tile_size,
        max_frame_bytes=args.max_frame_mib << 20,
        max_training_jobs=args.max_training_jobs,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        token_file=args.token_file,
        insecure=args.insecure,
        idle_seconds=args.idle_timeout or None,
        grace_seconds=max(0.0, args.grace),
        data_root=args.data_root,
        metrics_port=args.metrics_port,
        max_queued=max(0, args.max_queued),
        queue_seconds=max(0.0, args.queue_timeout),
        max_batch=None if args.max_batch is None else max(1, args.max_batch),
        max_queue_delay=max(0.0, args.max_queue_delay_ms) / 1000.0,
    )
    return 0
