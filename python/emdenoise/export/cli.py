"""``emdenoise export``: turn a training checkpoint into a model folder, or put benchmark metrics on its card.

Examples::

    emdenoise export /tmp/unet32 --id sbd-unet32-hrtem --out export --default
    emdenoise bench sbd --method sbd-unet32-hrtem --out /tmp/bench
    emdenoise export --id sbd-unet32-hrtem --out export --metrics /tmp/bench/sbd.json
    emdenoise export /tmp/xc-low --id ede-xception-w025-tem-low      # Ede network (seed 001)
    emdenoise export --id ede-xception-w025-tem-low --metrics /tmp/bench/ede-low.json
    emdenoise export /tmp/ae16 --id ede-ae-d16                        # encoder + decoder (seed 002)
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
    p.add_argument("--metrics", metavar="BENCH_JSON",
                   help="sbd.json, ede-<dose>.json or autoencoders-<dose>.json written by "
                        "'emdenoise bench sbd|ede|autoencoders'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and/or attach metrics; prints the folder and the card's key figures."""
    folder = Path(args.out) / args.model_id
    if args.checkpoint:
        try:
            from emdenoise.export.torch_export import export_checkpoint
        except ImportError as error:
            raise UserError(f"export needs PyTorch ({error}); install it with: pip install 'emdenoise[train]'.") from None
        family = _family(args.checkpoint)
        if family in ("ede-xception", "ede-ae"):
            from emdenoise.export.ede_models import export_autoencoder, export_ede_network

            if args.fp16 or args.default:
                raise UserError(f"--fp16 and --default are not offered for {family} exports; drop them.")
            if family == "ede-xception":
                folder = export_ede_network(args.checkpoint, args.out, args.model_id, name=args.name, tile=args.tile, notes=args.note)
            else:
                folder = export_autoencoder(args.checkpoint, args.out, args.model_id, name=args.name, notes=args.note)
        else:
            folder = export_checkpoint(
                args.checkpoint, args.out, args.model_id, name=args.name, modality=args.modality,
                default=args.default, tile=args.tile, fp16=args.fp16, notes=args.note,
            )
    elif not args.metrics:
        raise UserError("nothing to do: give a CHECKPOINT to export, or --metrics BENCH_JSON to update a card.")
    if args.metrics:
        if not (folder / "card.json").is_file():
            raise UserError(f"{folder} holds no model card; export the checkpoint first.")
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        if _is_table3(args.metrics):
            from emdenoise.export.ede_models import attach_table3_metrics

            metrics = attach_table3_metrics(folder, args.metrics)
            print(json.dumps({"model": args.model_id, **{k: v for k, v in metrics.items() if k.endswith("_mean")}}))
        elif card.get("architecture", {}).get("spec", {}).get("family") == "ede-xception":
            from emdenoise.export.ede_models import attach_ede_metrics

            metrics = attach_ede_metrics(folder, args.metrics)
            print(json.dumps({"model": args.model_id, "mse_mean": metrics["mse_mean"], "ssim_mean": metrics["ssim_mean"],
                              "mse_change_vs_best_classical": metrics["mse_change_vs_best_classical"]}))
        else:
            from emdenoise.export.torch_export import attach_metrics

            metrics = attach_metrics(folder, args.metrics)
            print(json.dumps({"model": args.model_id, "psnr_mean": metrics["psnr_mean"], "ssim_mean": metrics["ssim_mean"],
                              "best_classical": metrics["best_classical"]}))
    print(folder)
    return 0


def _family(checkpoint: str) -> str:
    """The model family a checkpoint holds (decides which exporter writes the folder)."""
    from emdenoise.train.checkpoints import load_checkpoint

    return str(load_checkpoint(checkpoint)["recipe"]["model"].get("family", ""))


def _is_table3(bench_json: str) -> bool:
    """Whether ``bench_json`` was written by ``bench autoencoders`` (seed 002, Table 3)."""
    try:
        return "Table 3" in str(json.loads(Path(bench_json).read_text(encoding="utf-8")).get("protocol", ""))
    except (OSError, ValueError, AttributeError):
        return False
