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
            "description": (("Anscombe transform, " if config.get("family") == "vst-unet" else "")
                            + f"residual U-Net, {config.get('depth', 3)} poolings, leaky ReLU, no normalisation "
                            f"(emdenoise.models.{'vst_unet' if config.get('family') == 'vst-unet' else 'adapt_unet'}), "
                            f"w = {config['width']}"),
            "spec": {"family": config.get("family", "adapt-unet"), "width": int(config["width"]),
                     "depth": int(config.get("depth", 3))},
            "parameters": int(parameters),
            "source": "issue 18; Noise2Noise (Lehtinen et al. 2018), binomial thinning, structured Noise2Void "
                      "(Broaddus et al. 2020)",
        },
        "graphs": {"denoise": {"file": "model.onnx", "input": "image", "output": "denoised", "precision": "fp32",
                               "sha256": sha256}},
        "torch_weights": {"file": "weights.npz", "note": "state dict of the network, for adapt --from"},
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
                "data": ("whole frames (SURE needs no held-out target)" if data.method == "sure"
                         else f"bottom {data.held_out.shape[1]} rows of every frame, never trained on"),
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


#: Network families ``adapt --from`` can continue: adapted models (their ``weights.npz``) and
#: the shipped sim-trained VST U-Nets of issue 17 (their ONNX initializers carry the state dict).
ADAPTABLE_FAMILIES = ("adapt-unet", "vst-unet")


def adaptable_weights(model_id: str, folders: list[Path]) -> tuple[Path, dict]:
    """Weights file (``weights.npz`` or the ONNX graph) and architecture spec of a model that
    ``--from`` may continue (no torch).

    Parameters
    ----------
    model_id : str
        An adapted model, or a shipped ``vst-unet`` model such as ``sim-vstunet32-stem-r2``.
    folders : list of path
        Model folders to search, first match wins.

    Returns
    -------
    path, dict
        Where the weights are and ``{"family", "width", "depth"}``.
    """
    import json

    for folder in folders:
        card_path = Path(folder) / model_id / "card.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text(encoding="utf-8"))
        architecture = card.get("architecture")
        spec = dict((architecture.get("spec") or {}) if isinstance(architecture, dict) else {})
        family = spec.get("family")
        weights = Path(folder) / model_id / ((card.get("torch_weights") or {}).get("file") or "weights.npz")
        if family == "vst-unet" and not weights.is_file():
            graph = (card.get("graphs") or {}).get("denoise") or {}
            weights = Path(folder) / model_id / str(graph.get("file") or "model.onnx")
        if family in ADAPTABLE_FAMILIES and weights.is_file():
            return weights, {"family": family, "width": int(spec.get("width", 24)), "depth": int(spec.get("depth", 3))}
        break
    raise UserError(f"--from {model_id}: only models made by emdenoise adapt (with their weights.npz) or the "
                    "sim-trained VST U-Nets (sim-vstunet*) can be continued; list them with 'emdenoise models' "
                    "or start from scratch without --from.")


def initial_state(model_id: str, folders: list[Path]) -> tuple[dict, dict]:
    """State dict and architecture spec of a model to continue from (``--from``)."""
    import numpy as np
    import torch

    weights, spec = adaptable_weights(model_id, folders)
    if weights.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        from emdenoise.models.vst_unet import VstUNet

        names = set(VstUNet(spec["width"], spec["depth"]).state_dict())
        graph = onnx.load(str(weights))
        state = {item.name: torch.from_numpy(numpy_helper.to_array(item).copy())
                 for item in graph.graph.initializer if item.name in names}
        if set(state) != names:
            raise UserError(f"--from {model_id}: its graph lacks {len(names - set(state))} of the network's "
                            "weights; it cannot be continued (start from scratch without --from).")
        return state, spec
    with np.load(weights, allow_pickle=False) as arrays:
        state = {name: torch.from_numpy(np.array(arrays[name])) for name in arrays.files}
    return state, spec
