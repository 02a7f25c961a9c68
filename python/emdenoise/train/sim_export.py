"""Ship a sim-trained counts denoiser: ONNX graph + card from a run's ``carry.npz`` (issue 17, item 7).

``python -m emdenoise.train.sim_export RUN/carry.npz --id sim-unet32-stem --out export/``
writes ``export/<id>/model.onnx`` (the averaged weights, checked against PyTorch) and a
card that records the simulator, the dose range, the normalisation, the cumulative steps
and CPU hours and the validation curve. Measured metrics are added afterwards from a
benchmark's JSON (:func:`attach_metrics`). A new id is required for new weights (recorded
macros name ids), so an existing folder is refused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from emdenoise.errors import UserError

#: Largest tile side the engine uses for these models.
TILE = 512


def _history(run_dir: Path) -> list[list[float]]:
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [[r["step"], r["cpu_hours"], r["val_error"]] for r in rows]


def _training_data(config: dict[str, Any], bank_waves: int | None) -> tuple[str, list[float], dict[str, Any], str]:
    """(modality, dose range, training-data record, validation description) of a run's source."""
    if config["source"] == "stem":
        from emdenoise.simulate.stem_scan import ScanConfig

        scan = ScanConfig()
        return "stem", [scan.dose[0], scan.dose[1]], {
            "simulator": "emdenoise.simulate.stem_imager.StemImager (scenes: lattice, particles, film, grains, blobs; "
                         "probe blur, line jitter, Poisson, causal scan-line filter, line flicker, read noise)",
            "scan_config": scan.as_dict(),
            "images": "new on every step, crop {crop}, batch {batch}".format(**config),
            "real_data": "none: the real frames of ../shared/data are test data only",
        }, "24 simulated 192x192 images, default_rng([917331, i])"
    if config["source"] == "hrtem":
        from emdenoise.simulate.exitwaves import BANK_VERSION, HELD_OUT_ELEMENTS
        from emdenoise.simulate.imaging import ImagingConfig

        imaging = ImagingConfig()
        return "hrtem", [imaging.dose[0], imaging.dose[1]], {
            "simulator": "abTEM exit-wave bank (emdenoise simulate exitwaves, lobato potentials, 80-300 kV, crystals at "
                         "zone axes as films, wedges, edges, particles, supported and faceted particles, amorphous "
                         "carbon) imaged on the fly by emdenoise.simulate.imaging.ExitWaveImager (defocus, Cs, C5, "
                         "astigmatism, coherence envelopes, aperture, vibration, pixel size, detector MTF, dose, Poisson)",
            "bank_version": BANK_VERSION,
            "bank_waves_at_export": bank_waves,
            "held_out": f"no {', '.join(HELD_OUT_ELEMENTS)}, no fluorite support, no kirkland potentials",
            "imaging_config": imaging.as_dict(),
            "images": "new on every step, crop {crop}, batch {batch}".format(**config),
        }, "the validation split of the cross-domain HRTEM set (emdenoise.simulate.crossdomain: Pt/CeO2, kirkland, " \
           "8 images, 512x512, 0.45 counts/px)"
    raise UserError(f"no card recipe for source {config['source']!r}.")


def build_card(model_id: str, meta: dict[str, Any], *, sha256: str, receptive_field: int, parameters: int,
               parity_error: float, history: list, torch_version: str, bank_waves: int | None = None) -> dict[str, Any]:
    """The card of a sim-trained model (ARCHITECTURE.md, "A model")."""
    from emdenoise import __version__

    config = meta["config"]
    modality, dose_range, training_data, validation = _training_data(config, bank_waves)
    multiple = 2 ** int(config.get("depth", 3))
    return {
        "id": model_id,
        "name": f"Sim-trained {modality.upper()} denoiser (VST U-Net, width {config['width']}, "
                f"{config.get('depth', 3)} poolings)",
        "version": "1",
        "task": "denoise",
        "backend": "onnx",
        "modality": modality,
        "default": False,
        "architecture": {
            "description": "Anscombe transform, residual U-Net ({depth} poolings, widths w/2w/2w/4w/4w..., leaky ReLU, "
                           "no normalisation layers), algebraic inverse (emdenoise.models.vst_unet)".format(
                               depth=config.get("depth", 3)),
            "spec": {"family": "vst-unet", "width": int(config["width"]), "depth": int(config.get("depth", 3))},
            "parameters": int(parameters),
            "source": "issue 17; U-Net after seed 003 appendix C.1 at reduced depth; VST as seed 003 sec. 5",
        },
        "graphs": {"denoise": {"file": "model.onnx", "input": "image", "output": "denoised", "precision": "fp32",
                               "sha256": sha256}},
        "normalization": {
            "kind": "counts",
            "note": "input is noise-equivalent counts (variance = mean): the engine applies (raw - offset) / gain with "
                    "the user's, the file's or the estimated calibration; the graph stabilises the variance itself",
        },
        "receptive_field": int(receptive_field),
        "global": False,
        # The halo is rounded up to the pooling multiple so the pooling grid of every tile falls where it
        # falls on the whole frame: the served output then equals the network run on the whole frame.
        "tile": {"size": TILE, "multiple_of": multiple, "overlap": -(-(int(receptive_field) // 2) // multiple) * multiple},
        "dose_range": dose_range,
        "dose_range_note": "mean counts per pixel (STEM) or vacuum counts per pixel (HRTEM) of the training images, "
                           "drawn log-uniform",
        "training_data": training_data,
        "validation_data": validation,
        "training": {
            "config": config,
            "steps": int(meta["steps"]),
            "cpu_hours": round(float(meta["cpu_seconds"]) / 3600, 3),
            "best_validation_error": meta.get("best_error"),
            "validation_gaussian": meta.get("gaussian"),
            "history_step_cpuh_valerror": history,
            "torch_version": torch_version,
        },
        "export": {"parity_max_abs_error": float(parity_error)},
        "metrics": {},
        "emdenoise_version": __version__,
    }


def export_run(carry: str | Path, model_id: str, out_dir: str | Path) -> Path:
    """Export a run's averaged weights to ``out_dir/model_id``; returns the folder.

    Raises
    ------
    UserError
        The folder exists, or the graph disagrees with PyTorch.
    """
    import torch

    from emdenoise.engine.cards import file_sha256
    from emdenoise.export.cards import install_model_folder, write_card
    from emdenoise.export.torch_export import PARITY_TOLERANCE, export_onnx, parity, receptive_field
    from emdenoise.train.sim_denoiser import model_from_carry

    carry = Path(carry)
    target = Path(out_dir) / model_id
    if target.exists():
        raise UserError(f"{target} exists; new weights need a new id (recorded macros name ids).")
    model, meta = model_from_carry(carry)
    with tempfile.TemporaryDirectory() as work:
        staging = Path(work) / model_id
        staging.mkdir()
        graph = export_onnx(model, staging / "model.onnx")
        error = parity(model, graph)
        if error > PARITY_TOLERANCE * 20:  # outputs are counts up to ~100, not unit-scaled values
            raise UserError(f"the exported graph differs from PyTorch by {error:.3g}; report this as a bug.")
        bank_waves = None
        if meta["config"]["source"] == "hrtem":
            from emdenoise.simulate.exitwaves import bank_files, default_bank_dir

            bank_waves = len(bank_files(default_bank_dir()))
        card = build_card(model_id, meta, sha256=file_sha256(graph), receptive_field=receptive_field(model),
                          parameters=sum(p.numel() for p in model.parameters()), parity_error=error,
                          history=_history(carry.parent), torch_version=torch.__version__, bank_waves=bank_waves)
        write_card(staging, card)
        return install_model_folder(staging, out_dir, model_id)


def attach_metrics(folder: str | Path, key: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Add a benchmark's measured figures to a card under ``metrics[key]``; returns the card."""
    from emdenoise.export.cards import write_card

    folder = Path(folder)
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    card.setdefault("metrics", {})[key] = metrics
    write_card(folder, card)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emdenoise.train.sim_export", description=__doc__.splitlines()[0])
    parser.add_argument("carry", type=Path)
    parser.add_argument("--id", required=True)
    parser.add_argument("--out", type=Path, default=Path("export"))
    args = parser.parse_args(argv)
    print(export_run(args.carry, args.id, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
