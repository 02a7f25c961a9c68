"""``emdenoise compress IN -o OUT.emz --model ID`` and ``emdenoise decompress IN.emz -o OUT``.

Seed 002, sec. 2: frames become 20x20xd latents per 160x160 tile, stored quantised and
zstd-coded in an ``.emz`` file (:mod:`emdenoise.compress.emz`); decompressing restores
the frames, with the autoencoder's denoising effect.
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.cli_types import positive_int
from emdenoise.commands.denoise import add_connection_arguments, client_from_args
from emdenoise.compress.emz import DEFAULT_LEVEL


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compress",
        help="store a stack as autoencoder latents (.emz), 1x-64x smaller",
        description="Encode each 160x160 tile of every frame with a seed-002 autoencoder (task 'encode' in "
        "'emdenoise models') and write the latents, quantised and zstd-coded, with the model's digests and the "
        "image's calibration, to an .emz file.",
    )
    p.add_argument("input", type=Path, metavar="IN", help="TIFF stack or EM file")
    p.add_argument("-o", "--output", required=True, type=Path, help="output .emz file (or folder: <stem>.emz)")
    p.add_argument("--model", required=True, help="autoencoder id, e.g. ede-ae-d16 (latent depth sets the size)")
    p.add_argument("--bits", type=int, default=8, choices=(8, 16), help="bits per stored latent (default 8)")
    p.add_argument("--level", type=positive_int, default=DEFAULT_LEVEL, help=f"zstd level 1-22 (default {DEFAULT_LEVEL})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_connection_arguments(p)
    p.set_defaults(func=run_compress)

    p = subparsers.add_parser(
        "decompress",
        help="restore an .emz file to a 32-bit TIFF (denoised by the autoencoder)",
        description="Decode the latents of an .emz file with the autoencoder that made them; a file from another "
        "model version, or a damaged or truncated file, is refused.",
    )
    p.add_argument("input", type=Path, metavar="IN", help=".emz file written by 'emdenoise compress'")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output .tif file (or folder: <stem>_denoised-<model>.tif)")
    p.add_argument("--model", help="must be the model that made the file (default: read from the file)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_connection_arguments(p)
    p.set_defaults(func=run_decompress)


def run_compress(args) -> int:
    from emdenoise.compress.files import compress_file, emz_path_for

    target = emz_path_for(args.input, args.output)
    with client_from_args(args) as client:
        result = compress_file(client, args.input, target, model_id=args.model, bits=args.bits, level=args.level,
                               overwrite=args.overwrite)
    print(result.summary())
    return 0


def run_decompress(args) -> int:
    from emdenoise.compress.emz import read_header
    from emdenoise.compress.files import check_model, decompress_file, restored_path_for

    header = read_header(args.input)
    model = check_model(header, args.model, args.input)
    target = restored_path_for(args.input, args.output, model)
    with client_from_args(args) as client:
        path = decompress_file(client, args.input, target, model_id=args.model, overwrite=args.overwrite)
    print(path)
    return 0
