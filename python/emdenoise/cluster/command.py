"""The ``--dask`` branch of ``emdenoise denoise``: files over workers, or one stack into Zarr."""

from __future__ import annotations

from pathlib import Path

from emdenoise.cluster.scheduler import dask_client
from emdenoise.errors import UserError
from emdenoise.workflow import Outcome


def denoise_with_dask(driver, args, inputs: list[Path]) -> list[Outcome]:
    """Run ``denoise`` with ``args.dask``; ``driver`` (embedded or remote client) plans the outputs."""
    models = None
    if args.models:
        from emdenoise.engine.repository import bundled_models_dir, user_models_dir

        models = tuple(str(folder) for folder in [bundled_models_dir(), user_models_dir(), *args.models])
    options = {"modality": args.modality, "gain": args.gain, "offset": args.offset, "tile_size": args.tile_size}
    with dask_client(args.dask) as client:
        if args.output.suffix.lower() == ".zarr":
            if len(inputs) != 1:
                raise UserError(f"-o {args.output.name} is one Zarr array, but {len(inputs)} inputs were given; "
                                "name one stack, or give a folder as -o.")
            from emdenoise.cluster.stores import denoise_to_zarr

            return [denoise_to_zarr(client, inputs[0], args.output, model_id=args.model, overwrite=args.overwrite,
                                    device=args.device, models_dirs=list(models) if models else None,
                                    server=args.server, **options)]
        from emdenoise.cluster.folder import denoise_on_dask

        connection = (args.server, models, args.device, args.tls_ca, args.token_file)
        return denoise_on_dask(client, driver, inputs, args.output, model_id=args.model, overwrite=args.overwrite,
                               connection=connection, **options)
