"""``emdenoise bench WHAT``: reproducible benchmark runs that print the papers' tables.

Each sub-verb lives in its own module exposing ``register(subparsers)``; it joins by one
:class:`~emdenoise.verbs.Verb` line in :data:`SUBVERBS` (name, the one-line help its
``register`` gives, ``module:register``). A sub-verb's module is imported only when it is
chosen, so ``emdenoise bench --help`` loads no baseline library.
"""

from __future__ import annotations

import argparse

from emdenoise.verbs import Verb, add_verbs

#: The ``bench`` sub-verbs, in the order ``emdenoise bench --help`` lists them. To add one,
#: add a line here; tests/test_cli_startup.py checks that its help equals its register's.
SUBVERBS = (
    Verb("ede", "Ede & Beanland Table 1: MSE/SSIM of denoisers on Poisson-noised clean crops",
         "emdenoise.bench.ede:register"),
    Verb("sbd", "SBD Table 1: PSNR/SSIM of denoisers at 0.45 counts/px in vacuum", "emdenoise.bench.sbd:register"),
    Verb("series", "CSS and paired-frame error of denoisers on a real series (no ground truth)",
         "emdenoise.bench.series:register"),
    Verb("autoencoders",
         "seed 002 Table 3: autoencoder error per latent depth, kernels/MLPs against their autoencoder",
         "emdenoise.bench.autoencoders:register"),
    Verb("engine",
         "megapixels/s per model (in-process vs gRPC vs shared memory), halo, latency at 1/4/16 clients, peak memory; --baseline REV",
         "emdenoise.bench.engine:register"),
    Verb("transport", "CPU ms per frame: in-process, shared memory, gRPC messages and plain TCP (issue 20, item 3)",
         "emdenoise.bench.transport:register"),
    Verb("compress", "seed 002 autoencoder latents (.emz) vs JPEG 2000 / JPEG XL at the same size, zstd lossless",
         "emdenoise.bench.compress:register"),
    Verb("adapt", "adapt (issue 18) against tuned and oracle Gaussians on real frames", "emdenoise.bench.adapt:register"),
    Verb("hrtem-xdomain",
         "issue 17 yardstick: tuned classical rows and models on unseen Pt/CeO2 HRTEM (kirkland, 0.45 counts/px)",
         "emdenoise.bench.hrtem_xdomain:register"),
    Verb("stem-real", "sim-trained STEM models against tuned Gaussians on a real frame pair",
         "emdenoise.bench.stem_real:register"),
    Verb("likelihood",
         "issue 21 bar: likelihood maps on the Pt/CeO2 HRTEM test set (vacuum regions unsupported, Pt columns supported)",
         "emdenoise.bench.likelihood:register"),
    Verb("training-log", "validation error against CPU hours of sim-trained runs", "emdenoise.bench.training_log:register"),
    Verb("candidates", "validation error at equal CPU budgets and serving cost of candidate networks",
         "emdenoise.bench.candidates:register"),
    Verb("dask", "MP/s and peak worker memory of emdenoise.dask on a LocalCluster (1 vs 2 workers, Zarr output)",
         "emdenoise.bench.dask_cluster:register"),
    Verb("load", "16 clients x 20 stacks, server killed and restarted midway; memory after cancelled uploads; SIGTERM time",
         "emdenoise.bench.load:register"),
    Verb("bioimageio", "export every shipped ONNX denoiser as a bioimage.io package and run bioimageio.core's test on it",
         "emdenoise.bench.bioimageio:register"),
    Verb("startup", "median wall time of 'emdenoise --help', 'models' and 'denoise --help' against 'python -c pass'",
         "emdenoise.bench.startup:register"),
    Verb("fiji-folder", "Denoise_Folder.ijm in real ImageJ (batch mode) vs 'emdenoise denoise FOLDER' on the same files",
         "emdenoise.bench.fiji_folder:register"),
    Verb("worker-memory",
         "resident memory of the Fiji warm worker denoising a 100 x 1024^2 uint16 stack (at 10/50/100 frames, peak)",
         "emdenoise.bench.worker_memory:register"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` verb and its sub-verbs (each loaded when chosen)."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks that print the seed papers' tables (ede, sbd, series)",
        description="Reproducible benchmarks: results go to JSON, Markdown and PNG files.",
    )
    add_verbs(parser, SUBVERBS, dest="bench_what", metavar="WHAT")
    parser.set_defaults(func=lambda args: _missing_what(parser))


def _missing_what(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
