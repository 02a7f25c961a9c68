"""``emdenoise denoise IN... -o OUT``: files or folders, embedded engine or a server.

The client and the file workflow are imported when the verb runs, so that
``emdenoise denoise --help`` (and every verb that borrows :func:`add_connection_arguments`)
starts without gRPC, ONNX Runtime or tifffile.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emdenoise import cli_types
from emdenoise.errors import UserError

MODALITIES = ("any", "tem", "stem", "tem+stem", "hrtem")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server`` (with ``--tls-ca`` / ``--token-file``) / ``--models`` / ``--device``: where and how models run."""
    parser.add_argument("--server", metavar="HOST:PORT", help="use a running 'emdenoise serve'; default: embedded engine")
    parser.add_argument("--tls-ca", type=Path, metavar="FILE",
                        help="the server's TLS certificate (self-signed) or its CA, PEM; env EMDENOISE_TLS_CA")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="file holding the server's token; env EMDENOISE_TOKEN (the token) or EMDENOISE_TOKEN_FILE")
    parser.add_argument("--shared-memory", choices=("auto", "on", "off"),
                        help="frames to a server on this machine through shared memory: auto (default: for a "
                             "loopback --server, else gRPC messages), on (insist), off; env EMDENOISE_SHARED_MEMORY")
    parser.add_argument("--models", type=Path, action="append", metavar="DIR", help="extra model folder (embedded engine)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="embedded engine device")


def client_from_args(args):
    """The client the arguments ask for."""
    import os

    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no gRPC log lines (TLS handshakes) around our one sentence
    from emdenoise.client import connect

    if args.server:
        return connect(args.server, tls_ca=args.tls_ca, token_file=args.token_file,
                       shared_memory=getattr(args, "shared_memory", None))
    if args.tls_ca or args.token_file:
        raise UserError("--tls-ca and --token-file secure a connection to a server; add --server HOST:PORT.")
    from emdenoise.engine.repository import bundled_models_dir, user_models_dir

    folders = None
    if args.models:
        folders = [bundled_models_dir(), user_models_dir(), *args.models]
    return connect(None, models=folders, device=args.device)


def register(subparsers) -> None:
    p = subparsers.add_parser("denoise", help="denoise TIFF/EM files or folders of them")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (or .tif file for one input)")
    p.add_argument("--model", help="model id (see 'emdenoise models'); default: the modality's default")
    p.add_argument("--modality", default="any", choices=MODALITIES, help="picks the default model")
    p.add_argument("--gain", type=cli_types.gain, help="detector counts per electron")
    p.add_argument("--offset", type=cli_types.offset, help="detector reading at zero electrons")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--tile-size", type=cli_types.tile_size,
                   help="largest tile side (default: chosen per frame, whole frames when they fit "
                        "$EMDENOISE_MEMORY_BUDGET_MB; same output either way)")
    p.add_argument("--dask", metavar="SCHEDULER",
                   help="spread the files over Dask workers: a scheduler address or file, or local:N (N worker "
                        "processes); with -o OUT.zarr one stack streams into Zarr (needs emdenoise[dask])")
    add_connection_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from emdenoise.workflow import denoise_many, expand_inputs, summary_table

    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise UserError("no input files were found; name image files or folders that contain them.")
    with client_from_args(args) as client:
        if args.dask:
            from emdenoise.cluster.command import denoise_with_dask

            outcomes = denoise_with_dask(client, args, inputs)
        else:
            outcomes = denoise_many(
                client,
                inputs,
                args.output,
                model_id=args.model,
                modality=args.modality,
                gain=args.gain,
                offset=args.offset,
                overwrite=args.overwrite,
                progress=True,
                tile_size=args.tile_size,
            )
    failed = [o for o in outcomes if o.status == "failed"]
    if len(outcomes) == 1 and failed:
        raise UserError(failed[0].detail)
    if len(outcomes) > 1 or failed:
        print(summary_table(outcomes))
    else:
        print(outcomes[0].detail if outcomes[0].status == "written" else f"skipped: {outcomes[0].detail}")
    return 1 if failed else 0
