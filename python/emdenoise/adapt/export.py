"""An adapted network becomes a model folder in the user model directory (ONNX + card + weights).

The graph maps counts to counts (:class:`emdenoise.models.adapt_unet.CountsDenoiser`), has a
finite receptive field (measured), so the engine tiles it with a halo; ``weights.npz``
lets a later ``adapt --from`` continue from it. The card records the data, the method, the
compute spent and the no-truth scores of the model *and* of ``classical-auto`` on the same
held-out strip, including when the classical filter won.
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
from pathlib import Path
from typing import Any

from emdenoise.errors import UserError

TILE = 512


def build_card(model_id: str, result, data, config: dict[str, Any], *, sources: list[str], modality: str,
               sha256: str, receptive_field: int, parity_error: float, parameters: int, torch_version: str,
               started_from: str | None) -> dict[str, Any]:
    """The ``card.json`` of an adapted model."""
    from emdenoise._version import __version__

    dose = float(data.dose)
    verdict = ("better than" if result.beats_classical else "NOT better than")
    return {
        "id": model_id,
        "name": f"Adapted ({data.method}) on {', '.join(sources) or 'the user frames'} ({dose:.3g} counts/px)",
        "version": "1",
        "task": "denoise",
        "backend": "onnx",
        "modality": modality,
        "default": False,
        "user_trained": True,
        "architecture": {
            "description": "residual U-Net, 3 poolings, widths w/2w/2w/4w, leaky ReLU, no normalisation "
                           f"(emdenoise.models.adapt_unet), w = {config['width']}",
            "spec": {"family": "adapt-unet", "width": int(config["width"])},
            "parameters": int(parameters),
            "source": "issue 18; Noise2Noise (Lehtinen et al. 2018), binomial thinning, structured Noise2Void "
                      "(Broaddus et al. 2020)",
        },
        "graphs": {"denoise": {"file": "model.onnx", "input": "image", "output": "denoised", "precision": "fp32",
                               "sha256": sha256}},
        "torch_weights": {"file": "weights.npz", "note": "state dict of the AdaptUNet, for adapt --from"},
        "normalization": {
            "kind": "counts",
            "note": "input is detected electrons per pixel: the engine applies (raw - offset) / gain; the graph "
                    f"divides by {result.scale:.6g} (the training frames' mean) and multiplies back",
            "input_scale": result.scale,
        },
        "receptive_field": int(receptive_field),
        "global": False,
        "tile": {"size": TILE, "multiple_of": 8, "overlap": int(receptive_field) // 2},
        "dose_range": [round(dose / 3, 6), round(dose * 3, 6)],
        "dose_range_note": "a factor of 3 around the mean counts per pixel of the frames it adapted to",
        "training_data": {"sources": sources, **data.summary()},
        "training": {
            "method": data.method,
            "criterion": result.criterion,
            "config": dict(config),
            "started_from": started_from,
            "steps_run": int(result.steps),
            "checkpoint_step": int(result.best_step),
            "stopped": result.stopped,
            "wall_seconds": round(float(result.seconds), 1),
            "cpu_hours": round(float(result.cpu_seconds) / 3600, 4),
            "torch_version": torch_version,
            "history": result.history,
        },
        "metrics": {
            "held_out_no_truth": {
                "criterion": result.criterion,
                "data": f"bottom {data.held_out.shape[1]} rows of every frame, never trained on",
                "units": "counts^2 (estimated mean squared error against the clean image, up to a constant "
                         "shared by every row)",
                "adapted": float(result.error),
                "classical_auto": {"method": result.classical.label, "error": float(result.classical.error),
                                   "candidates": {k: {str(p): e for p, e in v.items()}
                                                  for k, v in result.classical.errors.items()}},
                "unfiltered": None if math.isnan(result.identity_error) else float(result.identity_error),
                "beats_classical_auto": bool(result.beats_classical),
                "verdict": f"the adapted model is {verdict} classical-auto ({result.classical.label}) on held-out data",
            },
        },
        "export": {"opset": 18, "parity_max_abs_error": parity_error},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "emdenoise_version": __version__,
    }


def export_adapted(result, data, config: dict[str, Any], model_id: str, models_dir: str | Path, *,
                   work_dir: str | Path, sources: list[str], modality: str = "any",
                   started_from: str | None = None) -> Path:
    """Write ``models_dir/model_id`` (model.onnx, weights.npz, card.json); returns the folder.

    Raises
    ------
    UserError
        The id is taken, or the ONNX graph disagrees with PyTorch.
    """
    import torch

    from emdenoise.engine.cards import file_sha256
    from emdenoise.export.cards import install_model_folder, write_card
    from emdenoise.export.torch_export import PARITY_TOLERANCE, export_onnx, parity, receptive_field, save_weights
    from emdenoise.models.adapt_unet import CountsDenoiser

    if (Path(models_dir) / model_id).exists():
        raise UserError(f"a model {model_id} already exists in {models_dir}; choose another --name or delete that folder.")
    staging = Path(work_dir) / "export" / model_id  # the card must sit in a folder named after its id
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    model = CountsDenoiser(result.network, result.scale).eval()
    graph = export_onnx(model, staging / "model.onnx")
    error = parity(model, graph)
    tolerance = PARITY_TOLERANCE * max(1.0, 4 * float(result.scale))
    if error > tolerance:
        raise UserError(f"the exported graph differs from PyTorch by {error:.3g} (> {tolerance:.3g}); report this as a bug.")
    save_weights(result.network, staging / "weights.npz")
    field = receptive_field(model)
    card = build_card(model_id, result, data, config, sources=sources, modality=modality, sha256=file_sha256(graph),
                      receptive_field=field, parity_error=error,
                      parameters=sum(p.numel() for p in result.network.parameters()),
                      torch_version=torch.__version__, started_from=started_from)
    write_card(staging, card)
    return install_model_folder(staging, models_dir, model_id)


def adaptable_weights(model_id: str, folders: list[Path]) -> tuple[Path, int]:
    """``weights.npz`` and width of an earlier adapted model that ``--from`` may continue (no torch)."""
    import json

    for folder in folders:
        card_path = Path(folder) / model_id / "card.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text(encoding="utf-8"))
        architecture = card.get("architecture")
        spec = (architecture.get("spec") or {}) if isinstance(architecture, dict) else {}
        weights = Path(folder) / model_id / ((card.get("torch_weights") or {}).get("file") or "weights.npz")
        if spec.get("family") == "adapt-unet" and weights.is_file():
            return weights, int(spec.get("width", 24))
        break
    raise UserError(f"--from {model_id}: only models made by emdenoise adapt (with their weights.npz) can be "
                    "continued; list them with 'emdenoise models' or start from scratch without --from.")


def initial_state(model_id: str, folders: list[Path]) -> tuple[dict, int]:
    """State dict and width of an earlier adapted model to continue from (``--from``)."""
    import numpy as np
    import torch

    weights, width = adaptable_weights(model_id, folders)
    with np.load(weights, allow_pickle=False) as arrays:
        state = {name: torch.from_numpy(np.array(arrays[name])) for name in arrays.files}
    return state, width
