"""A series-trained Noise2Atom generator becomes a model folder in the user model directory.

Reuses :mod:`emdenoise.export.torch_export` (single-file ONNX with dynamic batch and size,
parity against PyTorch) and the card conventions of ``export/*/card.json`` (ARCHITECTURE.md,
"A model"). The folder is written next to the target and renamed into place, so a server
scanning the directory never sees half a model.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any

from emdenoise.errors import UserError

#: Largest tile side the engine feeds the graph (instance norm: the output depends on the tile).
TILE = 1024
OVERLAP = 32


def build_card(model_id: str, trained, config: dict[str, Any], series: dict[str, Any], *, sha256: str,
               parity_error: float, parameters: int, torch_version: str) -> dict[str, Any]:
    """The ``card.json`` of a series-trained model (which series, which dose, how long)."""
    from emdenoise._version import __version__

    dose = float(series["dose"])
    return {
        "id": model_id,
        "name": f"Noise2Atom trained on {series.get('name') or 'a STEM series'} ({dose:.3g} counts/px)",
        "version": "1",
        "task": "denoise",
        "backend": "onnx",
        "modality": "stem",
        "default": False,
        "user_trained": True,
        "architecture": {
            "description": "Noise2Atom Ms2c (seed 004, Methods, 'Network Architectures'): U-Net of depth "
                           f"{config['depth']} with multi-kernel (1/3/5/7) Xception modules, {config['residual_blocks']} "
                           f"residual blocks, instance norm + leaky ReLU, tanh output, base width {config['width']}; "
                           "wrapped with the counts-to-[-1, 1] input map and the fitted output map",
            "spec": {"family": "noise2atom", "width": config["width"], "depth": config["depth"],
                     "residual_blocks": config["residual_blocks"]},
            "parameters": int(parameters),
            "source": "seed 004, Methods",
        },
        "graphs": {"denoise": {"file": "model.onnx", "input": "image", "output": "denoised", "precision": "fp32",
                               "sha256": sha256}},
        "normalization": {
            "kind": "counts",
            "note": "input is detected electrons per pixel: the engine applies (raw - offset) / gain; inside the graph "
                    f"counts / {trained.scale:.6g} map to [-1, 1] and the output (tanh + 1) / 2 is mapped back to counts "
                    f"as {trained.gain_out:.6g} x + {trained.offset_out:.6g} (least squares against the training frames)",
            "input_scale": trained.scale,
            "output_gain": trained.gain_out,
            "output_offset": trained.offset_out,
        },
        "global": True,
        "global_reason": "instance normalisation: the output depends on the statistics of the whole tile",
        "tile": {"size": TILE, "multiple_of": 2 ** int(config["depth"]), "overlap": OVERLAP},
        "dose_range": [round(dose / 3, 6), round(dose * 3, 6)],
        "dose_range_note": "a factor of 3 around the mean counts per pixel of the training series",
        "training_data": {
            "series": series.get("name", ""),
            "frames": int(series["frames"]),
            "shape": list(series["shape"]),
            "frames_used": list(trained.frames_used),
            "held_out_pair": list(trained.held_out),
            "dose_counts_per_px": dose,
            "gain": series["gain"], "offset": series["offset"], "calibration": series["source"],
            "clean_domain": "seed 004 Gaussian peaks (emdenoise.simulate.stem.noise2atom_clean), variance "
                            f"{list(trained.clean_variance)} px^2"
                            + (" (matched to the series' peak width)" if config.get("match_peak_width") else ""),
        },
        "training": {
            "method": "Noise2Atom (seed 004): WGAN-GP critic, cycle and low-frequency cycle losses",
            "config": dict(config),
            "steps_run": int(trained.steps),
            "checkpoint_step": int(trained.best_step),
            "checkpoint_rule": "lowest thinned error (binomial halves of each frame) on the held-out consecutive pair",
            "stopped": trained.stopped,
            "wall_seconds": round(float(trained.seconds), 1),
            "device": trained.device,
            "torch_version": torch_version,
            "history": trained.history,
        },
        "export": {"opset": 18, "parity_max_abs_error": parity_error,
                   "parity_input": "Poisson counts, 2 x 1 x 96 x 160"},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "emdenoise_version": __version__,
    }


def export_series_model(trained, config: dict[str, Any], series: dict[str, Any], model_id: str,
                        models_dir: str | Path, *, work_dir: str | Path) -> Path:
    """Export ``trained`` as ``models_dir/model_id`` (model.onnx + card.json); returns the folder.

    Raises
    ------
    UserError
        The id is taken in ``models_dir``, or the ONNX graph disagrees with PyTorch.
    """
    import torch

    from emdenoise.engine.cards import file_sha256
    from emdenoise.export.cards import install_model_folder
    from emdenoise.export.torch_export import PARITY_TOLERANCE, export_onnx, parity
    from emdenoise.models.noise2atom import SeriesDenoiser

    target = Path(models_dir) / model_id
    if target.exists():
        raise UserError(f"a model {model_id} already exists in {models_dir}; choose another --name or delete that folder.")
    staging = Path(work_dir) / f"export-{model_id}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    model = SeriesDenoiser(trained.generator, trained.scale, trained.gain_out, trained.offset_out).eval()
    graph = export_onnx(model, staging / "model.onnx")
    error = parity(model, graph)
    tolerance = PARITY_TOLERANCE * max(1.0, float(trained.gain_out) * 2)
    if error > tolerance:
        raise UserError(f"the exported graph differs from PyTorch by {error:.3g} (> {tolerance:.3g}); report this as a bug.")
    parameters = sum(p.numel() for p in trained.generator.parameters())
    card = build_card(model_id, trained, config, series, sha256=file_sha256(graph), parity_error=error,
                      parameters=parameters, torch_version=torch.__version__)
    (staging / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return install_model_folder(staging, models_dir, model_id)
