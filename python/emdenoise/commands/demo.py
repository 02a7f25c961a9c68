"""``emdenoise demo``: the bundled sample through the embedded engine, no server needed."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="denoise the bundled sample micrograph (embedded engine)")
    p.add_argument("-o", "--output", type=Path, default=Path("emdenoise-demo"), help="output folder")
    p.add_argument("--model", help="model id; default: the STEM default (the sample is HAADF-STEM)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier demo")
    p.set_defaults(func=run)


def run(args) -> int:
    from emdenoise.demo import run_demo

    tiff_path, png_path = run_demo(args.output, model_id=args.model, overwrite=args.overwrite, device=args.device)
    print(f"denoised sample: {tiff_path}")
    print(f"side by side (raw | denoised | raw - denoised): {png_path}")
    return 0
