"""``emdenoise export``: turn a training checkpoint into a model folder, or put benchmark metrics on its card.

Examples::

    emdenoise export /tmp/unet32 --id sbd-unet32-hrtem --out export --default
    emdenoise bench sbd --method sbd-unet32-hrtem --out /tmp/bench
    emdenoise export --id sbd-unet32-hrtem --out export --metrics /tmp/bench/sbd.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emdenoise.cli_types import positive_int
from emdenoise.errors import UserError


def register(subparsers) -> None:
    """Add the ``export`` verb."""
    p = subparsers.add_parser(
        "export",
        help="export a training checkpoint to ONNX + model card (needs torch), or attach benchmark metrics",
        description="Write <out>/<id>/model.onnx, weights.npz and card.json from a checkpoint; "
                    "with --metrics only, copy a benchmark result onto an existing card.",
    )
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help="best.pt/last.pt or the --out folder of 'emdenoise train' (omit with --metrics to update a card)")
    p.add_argument("--id", required=True, dest="model_id", help="model id, e.g. sbd-unet32-hrtem")
    p.add_argument("--out", default="export", help="model repository folder (default: export)")
    p.add_argument("--name", help="human-readable name on the card")
    p.add_argument("--modality", default="hrtem", help="card modality (default: hrtem)")
    p.add_argument("--default", action="store_true", help="flag the model as the default for its modality")
    p.add_argument("--tile", type=positive_int, default=512, help="core tile side the engine uses (default: 512)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute (float32 input/output)")
    p.add_argument("--note", action="append", default=[], help="a note for the card; repeatable")
    p.add_argument("--metrics", metavar="BENCH_JSON", help="sbd.json written by 'emdenoise bench sbd --method ID'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and/or attach metrics; prints the folder and the card's key figures."""
    folder = Path(args.out) / args.model_id
    if args.checkpoint:
        try:
            from emdenoise.export.torch_export import export_checkpoint
        except ImportError as error:
            raise UserError(f"export needs PyTorch ({error}); install it with: pip install 'emdenoise[train]'.") from None
        folder = export_checkpoint(
            args.checkpoint, args.out, args.model_id, name=args.name, modality=args.modality,
            default=args.default, tile=args.tile, fp16=args.fp16, notes=args.note,
        )
    elif not args.metrics:
        raise UserError("nothing to do: give a CHECKPOINT to export, or --metrics BENCH_JSON to update a card.")
    if args.metrics:
        if not (folder / "card.json").is_file():
            raise UserError(f"{folder} holds no model card; export the checkpoint first.")
        from emdenoise.export.torch_export import attach_metrics

        metrics = attach_metrics(folder, args.metrics)
        print(json.dumps({"model": args.model_id, "psnr_mean": metrics["psnr_mean"], "ssim_mean": metrics["ssim_mean"],
                          "best_classical": metrics["best_classical"]}))
    print(folder)
    return 0
