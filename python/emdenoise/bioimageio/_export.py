"""``emdenoise export-bioimageio``: a model card and its ONNX graph as a bioimage.io model package.

The package (bioimage.io model description format 0.5, written and validated with
bioimageio.spec) holds ``rdf.yaml``, the ONNX weights, a test input and the test output
that emdenoise's own engine gives for it, a cover image, a README and the seed paper's
citation. bioimageio.core's test runs the packaged graph on the test input and compares
with that output, so a passing test means the package gives the engine's pixels.

How the card's input normalisation (:func:`emdenoise.engine.normalization.fit_normalization`)
is expressed in bioimage.io terms:

- ``counts`` (seed 003, sec. 3): ``(raw - offset) / gain`` with the detector's calibration.
  bioimage.io has no per-image calibration, so the package fixes one: ``scale_linear``
  preprocessing ``raw / gain - offset / gain`` and postprocessing ``x * gain + offset``
  (left out for the default gain 1, offset 0: the input must then already be electron
  counts). The test output is the engine's with that same gain and offset.
- ``range01`` (seed 001, sec. 3.1): ``scale_range`` preprocessing with percentiles 0 and
  100 over y and x of each sample. bioimage.io has no step that maps the output back with
  the input's minimum and maximum, so the package's output stays in the model's [0, 1]
  units: ``engine = output * (max - min) + min``.
- ``min-mean`` (seed 002, sec. 2.2: minus the minimum, divided by the mean) is not a
  bioimage.io step. The shipped min-mean models are linear convolutions without bias, for
  which min-mean and min-max scaling differ by a per-frame factor that passes through the
  graph, so ``scale_range`` 0-100 reproduces them exactly, output again in [0, 1] units.
  A min-mean graph that is not such a convolution is refused.

The graph gets the engine's reflection padding built in
(:func:`emdenoise.bioimageio._graph.with_reflection_padding`): bioimage.io consumers run
it on the whole image, the engine pads each tile, and the two must agree at the borders.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from emdenoise._version import __version__
from emdenoise.bioimageio import _spec
from emdenoise.bioimageio._graph import graph_io_names, with_reflection_padding
from emdenoise.engine.cards import ModelCard, file_sha256
from emdenoise.errors import UserError

#: Seed papers a card may cite (ARCHITECTURE.md, the seeds table). Identifiers checked against
#: the papers' public records: seed 001's preprint (arXiv 1807.11234), seed 002's code as the
#: paper names it, seed 003's journal DOI (IEEE TCI 8, 585-597, 2022; arXiv 2010.12970).
SEED_CITATIONS: dict[str, dict[str, str]] = {
    "001": {
        "text": "Ede, J. M. and Beanland, R. (2019). Improving electron micrograph signal-to-noise with an "
        "atrous convolutional encoder-decoder. arXiv:1807.11234.",
        "url": "https://arxiv.org/abs/1807.11234",
    },
    "002": {
        "text": "Ede, J. M. Autoencoders, kernels, and multilayer perceptrons for electron micrograph restoration "
        "and compression (code and models named by the paper).",
        "url": "https://github.com/Jeffrey-Ede/Denoising-Kernels-MLPs-Autoencoders",
    },
    "003": {
        "text": "Mohan, S. et al. Deep denoising for scientific discovery: a case study in electron microscopy "
        "(simulation-based denoising, SBD). IEEE Transactions on Computational Imaging 8, 585-597 (2022).",
        "doi": "10.1109/TCI.2022.3176536",
    },
}
EMDENOISE_CITATION = {
    "text": "emdenoise: Poisson-noise restoration of electron micrographs (model repository and engine).",
    "url": "https://pypi.org/project/emdenoise/",
}
AUTHORS = [{"name": "the emdenoise developers"}]
LICENSE = "MIT"
TEST_SIZE = 256
SCALE_RANGE_EPS = 1e-6


@dataclass
class Normalisation:
    """A card's normalisation in bioimage.io terms: steps, the note saying why, and the test output map."""

    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    postprocessing: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    #: Maps (test input, engine output) to the output the package gives.
    to_package_units: Callable[[np.ndarray, np.ndarray], np.ndarray] = lambda raw, out: out
    engine_options: dict[str, float] = field(default_factory=dict)


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // int(multiple)) * int(multiple)


def cited_seeds(card: ModelCard) -> list[str]:
    """Seed numbers the card names ("seed 003"), its architecture's source first; 000 is 001."""
    raw = card.raw
    architecture = raw.get("architecture")
    first = json.dumps(architecture.get("source", "") if isinstance(architecture, dict) else architecture or "")
    found = re.findall(r"seed (00\d)", first + json.dumps(raw))
    seeds = []
    for seed in found:
        seed = "001" if seed == "000" else seed
        if seed in SEED_CITATIONS and seed not in seeds:
            seeds.append(seed)
    return seeds


def _is_linear_convolution(model: onnx.ModelProto) -> bool:
    """True when every node is a bias-free Conv (the graph is linear and homogeneous)."""
    return all(node.op_type == "Conv" and len(node.input) == 2 for node in model.graph.node)


def normalisation_for(card: ModelCard, graph: onnx.ModelProto, *, gain: float, offset: float) -> Normalisation:
    """Express ``card``'s normalisation as bioimage.io pre/postprocessing (see the module notes).

    Raises
    ------
    UserError
        A normalisation that bioimage.io cannot express for this graph.
    """
    kind = card.normalization.get("kind", "none")
    per_sample_range = {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": 0.0,
                                                        "max_percentile": 100.0, "eps": SCALE_RANGE_EPS}}

    def range_units(raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        low, high = float(raw.min()), float(raw.max())
        return ((out.astype(np.float64) - low) / (high - low)).astype(np.float32)

    if kind == "none":
        return Normalisation(note="The model takes and returns the image's own values (no normalisation).")
    if kind == "counts":
        result = Normalisation(engine_options={"gain": gain, "offset": offset})
        if gain == 1.0 and offset == 0.0:
            result.note = (
                "The model takes detected electrons per pixel (counts) and returns counts. emdenoise converts "
                "detector values with each image's gain and offset, (raw - offset) / gain, estimating them from "
                "the mean-variance relation when the file does not say; bioimage.io has no per-image calibration, "
                "so this package expects counts: divide raw values by the detector gain (counts per electron) "
                "after subtracting its offset, or export again with --gain/--offset for one detector."
            )
        else:
            result.preprocessing = [{"id": "scale_linear", "kwargs": {"gain": 1.0 / gain, "offset": -offset / gain}}]
            result.postprocessing = [{"id": "scale_linear", "kwargs": {"gain": gain, "offset": offset}}]
            result.note = (
                f"The model works on detected electrons per pixel. This package fixes one detector calibration, "
                f"gain {gain:g} counts per electron and offset {offset:g}: preprocessing scale_linear computes "
                f"(raw - {offset:g}) / {gain:g} and postprocessing maps the result back to detector values. Images "
                f"from another detector or setting need another export (emdenoise export-bioimageio --gain --offset)."
            )
        return result
    if kind == "range01":
        return Normalisation(
            preprocessing=[per_sample_range],
            to_package_units=range_units,
            note=(
                "emdenoise scales each frame to [0, 1] by its minimum and maximum (seed 001, sec. 3.1) and maps the "
                "output back; here preprocessing scale_range (percentiles 0 and 100 over y and x) does the first "
                "step, and since bioimage.io has no step that undoes it with the input's range, the output stays "
                "in [0, 1] units: multiply by (max - min) of the input and add its min to get emdenoise's pixels."
            ),
        )
    if kind == "min-mean":
        if not _is_linear_convolution(graph):
            raise UserError(
                f"model {card.id} normalises each frame by its minimum and mean, which bioimage.io cannot express "
                "for a non-linear graph; it cannot be exported as a bioimage.io package."
            )
        return Normalisation(
            preprocessing=[per_sample_range],
            to_package_units=range_units,
            note=(
                "emdenoise subtracts each frame's minimum and divides by the mean of the result (seed 002, sec. 2.2), "
                "which is not a bioimage.io step. This graph is a bias-free linear convolution, so min-mean and "
                "min-max scaling differ only by a per-frame factor that passes through it: preprocessing scale_range "
                "(percentiles 0 and 100 over y and x) gives exactly emdenoise's result in [0, 1] units; multiply by "
                "(max - min) of the input and add its min to get emdenoise's pixels."
            ),
        )
    raise UserError(f"model {card.id} has normalization {kind!r}, which export-bioimageio does not know; upgrade emdenoise.")


def padding_for(card: ModelCard) -> tuple[int, int, int, int]:
    """The engine's margins for a one-tile frame: (left, right, multiple_of, declared halo).

    ``left`` is the engine's halo (receptive-field radius, or a global model's overlap),
    ``right`` what reaches the pooling multiple on a frame whose sides are multiples of
    it (:func:`emdenoise.engine.tiling.pad_frame`). The declared bioimage.io halo is
    ``left`` rounded up to the multiple, so that a consumer's own padding keeps the pooling
    grid where the engine has it.
    """
    tile = card.tile
    multiple = max(int(tile.get("multiple_of", 1)), 1)
    left = int(tile.get("overlap", 0)) if card.is_global else card.receptive_field // 2
    right = _round_up(2 * left, multiple) - left
    return left, right, multiple, _round_up(left, multiple)


def sample_frame(card: ModelCard, *, gain: float = 1.0, offset: float = 0.0, size: int = TEST_SIZE) -> np.ndarray:
    """A test input: the bundled 256x256 SrTiO3 HAADF-STEM crop at the card's dose.

    ``size`` above 256 extends the crop by reflection (models whose halo needs larger
    inputs). With a dose range the crop is rescaled to its middle and Poisson-sampled (seeded), and
    for counts models turned into detector values with ``gain`` and ``offset``; otherwise
    the crop is used as it is.
    """
    from emdenoise.demo import sample_path
    from emdenoise.io.tiff import read_tiff

    sample, _ = read_tiff(sample_path())
    sample = np.asarray(sample, np.float64)[:size, :size]
    if size > sample.shape[0]:
        sample = np.pad(sample, [(0, size - sample.shape[0]), (0, size - sample.shape[1])], mode="reflect")
    dose = card.dose_range
    if dose:
        rng = np.random.default_rng(20260)
        sample = rng.poisson(sample / sample.mean() * (dose[0] + dose[1]) / 2).astype(np.float64)
        if card.normalization.get("kind") == "counts":
            sample = sample * gain + offset
    return sample.astype(np.float32)


def cover_image(raw: np.ndarray, denoised: np.ndarray, path: Path) -> Path:
    """Save input | output side by side (2:1 PNG), each stretched to its 0.5-99.5 percentiles."""
    from PIL import Image

    def stretch(image):
        low, high = np.percentile(image, [0.5, 99.5])
        scaled = (image.astype(np.float64) - low) / max(high - low, 1e-12)
        return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)

    Image.fromarray(np.hstack([stretch(raw), stretch(denoised)])).save(path)
    return path


def _readme(card: ModelCard, norm: Normalisation, seeds: list[str], left: int, right: int, halo: int,
            min_size: int) -> str:
    raw = card.raw
    dose = card.dose_range
    lines = [
        f"# {card.id}",
        "",
        f"{raw.get('name', card.id)}. Exported from the emdenoise model repository by "
        f"`emdenoise export-bioimageio` (emdenoise {__version__}).",
        "",
        "## Input and output",
        "",
        f"One 2-D grayscale image, axes (batch, channel, y, x), float32. Modality: {card.modality}."
        + (f" Trained for {dose[0]:g}-{dose[1]:g} counts per pixel." if dose else ""),
        "",
        norm.note,
        "",
        "## Borders and tiling",
        "",
        f"The graph reflect-pads its input by {left} px before and {right} px after each image axis and crops "
        "the same margins from its output, as the emdenoise engine pads every tile (seed 001, sec. 3.2), so the "
        "packaged graph gives the engine's pixels at the borders too."
        + (
            f" The output halo ({halo} px) is the receptive-field radius {card.receptive_field // 2} px rounded up "
            f"to the pooling multiple {card.tile.get('multiple_of', 1)}."
            if not card.is_global
            else f" This model is global (its output depends on the whole tile, e.g. image pooling): emdenoise "
            f"runs it on tiles of {card.tile.get('size')} px with {halo} px overlap, so the package equals the "
            f"engine on images up to that size; a bioimage.io consumer running larger images whole gets slightly "
            f"different pixels."
        ),
        "",
        "## Test data",
        "",
        f"`test_input.npy` is a {max(TEST_SIZE, min_size)}x{max(TEST_SIZE, min_size)} crop of a real HAADF-STEM "
        "image of SrTiO3 (MIT, Lukas Grünwald, see the emdenoise sample notice; extended by reflection beyond "
        "256 px)" + (", rescaled to the middle of the dose range and Poisson-sampled" if dose else "")
        + "; `test_output.npy` is what the emdenoise engine returns for it"
        + (" (in the package's output units, see above)." if norm.to_package_units.__name__ == "range_units" else "."),
        "",
        "## Validation",
        "",
        "`bioimageio.core`'s test reproduces `test_output.npy` from `test_input.npy` with this graph and the "
        "pre/postprocessing above (`emdenoise bench bioimageio` runs it for every shipped denoiser). The "
        "benchmark below is emdenoise's own.",
        "",
        "## Training and metrics",
        "",
        f"Training data: {raw.get('training_data', 'see the card')}.",
        "",
    ]
    metrics = raw.get("metrics") or {}
    if metrics.get("psnr_mean") is not None:
        lines += [
            f"Benchmark ({metrics.get('benchmark', '')}): PSNR {metrics['psnr_mean']:.2f} dB, "
            f"SSIM {metrics.get('ssim_mean', float('nan')):.3f} on {json.dumps(metrics.get('test_set', {}))}.",
            "",
        ]
    for note in raw.get("notes") or []:
        lines += [f"- {note}"]
    lines += ["", "## Cite", ""]
    lines += [f"- {SEED_CITATIONS[s]['text']}" for s in seeds] + [f"- {EMDENOISE_CITATION['text']}", ""]
    lines += ["The full emdenoise model card is in `rdf.yaml` under `config.emdenoise.card`.", ""]
    return "\n".join(lines)


def _axes(min_size: int, multiple: int, halo: int | None, *, output: bool) -> list[dict[str, Any]]:
    axes: list[dict[str, Any]] = [{"type": "batch"}, {"type": "channel", "channel_names": ["intensity"]}]
    for axis in ("y", "x"):
        if output:
            entry = {"type": "space", "id": axis, "size": {"tensor_id": "image", "axis_id": axis}}
            if halo:
                entry["halo"] = halo
        else:
            entry = {"type": "space", "id": axis, "size": {"min": min_size, "step": multiple}}
        axes.append(entry)
    return axes


def export_package(
    model_id: str,
    output_dir: str | Path,
    *,
    gain: float = 1.0,
    offset: float = 0.0,
    zip_path: str | Path | None = None,
    overwrite: bool = False,
    engine=None,
) -> Path:
    """Write ``model_id`` as a bioimage.io model package into ``output_dir``.

    Parameters
    ----------
    model_id : str
        An installed onnx denoise model (``emdenoise models``).
    output_dir : path-like
        Folder to create (refused when it exists and is not empty, unless ``overwrite``).
    gain, offset : float
        Detector calibration fixed into a counts model's ``scale_linear`` steps (see the
        module notes); ignored by other models.
    zip_path : path-like, optional
        Also write the package as one zip file there.
    overwrite : bool
        Replace an existing ``output_dir`` (and ``zip_path``).
    engine : emdenoise.engine.Engine, optional
        Engine that finds the model and makes the test output; default: the embedded one on CPU.

    Returns
    -------
    Path
        ``output_dir / "rdf.yaml"``.

    Raises
    ------
    UserError
        Unknown model, not an onnx denoiser, a normalisation bioimage.io cannot express,
        an existing output, bioimageio.spec missing, or a package bioimageio.spec refuses.

    References
    ----------
    bioimage.io model description format 0.5 (bioimageio.spec); the normalisations of
    seeds 001 (sec. 3.1), 002 (sec. 2.2) and 003 (sec. 3); reflection padding, seed 001 sec. 3.2.
    """
    spec = _spec.require("bioimageio.spec")
    from emdenoise.engine import Engine
    from emdenoise.engine.validation import check_job_options

    checked = check_job_options(gain=gain, offset=offset)
    gain, offset = float(checked["gain"]), float(checked["offset"])
    engine = engine or Engine(device="cpu")
    card = engine.card(model_id)
    if card.backend != "onnx" or card.task != "denoise":
        raise UserError(
            f"model {card.id} is a {card.backend} {card.task} model; export-bioimageio takes onnx denoise models "
            "(see 'emdenoise models')."
        )
    out = Path(output_dir)
    zip_path = Path(zip_path) if zip_path else None
    for target in [out] + ([zip_path] if zip_path else []):
        if target.exists() and (target.is_file() or any(target.iterdir())) and not overwrite:
            raise UserError(f"{target} already exists; pass --overwrite or choose another output.")
    graph_spec = next(iter(card.graphs.values()))
    graph = onnx.load(str(card.folder / graph_spec.file))
    norm = normalisation_for(card, graph, gain=gain, offset=offset)
    left, right, multiple, halo = padding_for(card)
    wrapped = with_reflection_padding(graph, left, right)
    name_in, name_out = graph_io_names(wrapped)
    opset = next(op.version for op in wrapped.opset_import if op.domain in ("", "ai.onnx"))

    # ONNX reflection needs sides above the margins; bioimage.io wants min size > 2 * halo.
    min_size = _round_up(max(left + 1, right + 1, 2 * halo + 1), multiple)
    raw = sample_frame(card, gain=gain, offset=offset, size=max(TEST_SIZE, min_size))
    denoised = engine.denoise(raw, card.id, **norm.engine_options)
    expected = norm.to_package_units(raw, denoised)

    if out.exists() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(wrapped, str(out / "model.onnx"))
    np.save(out / "test_input.npy", raw[None, None])
    np.save(out / "test_output.npy", expected[None, None].astype(np.float32))
    cover_image(raw, expected, out / "cover.png")
    seeds = cited_seeds(card)
    (out / "README.md").write_text(_readme(card, norm, seeds, left, right, halo, min_size), encoding="utf-8")

    modality_tag = {"tem": "transmission-electron-microscopy", "hrtem": "high-resolution-tem",
                    "stem": "scanning-transmission-electron-microscopy"}
    tags = ["denoising", "electron-microscopy", "2d", "onnx", "emdenoise"]
    tags += [modality_tag[m] for m in card.modality.split("+") if m in modality_tag]
    content: dict[str, Any] = {
        "format_version": spec.model.v0_5.ModelDescr.implemented_format_version,
        "type": "model",
        "name": f"emdenoise {card.id}",
        "description": str(card.raw.get("name", card.id))[:1024],
        "version": str(card.version or "1"),
        "authors": AUTHORS,
        "cite": [dict(SEED_CITATIONS[s]) for s in seeds] + [dict(EMDENOISE_CITATION)],
        "license": LICENSE,
        "documentation": {"source": "README.md", "sha256": file_sha256(out / "README.md")},
        "covers": [{"source": "cover.png", "sha256": file_sha256(out / "cover.png")}],
        "tags": tags,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "inputs": [{
            "id": "image",
            "description": "electron micrograph" + (" in counts (detected electrons per pixel)"
                                                    if norm.engine_options and not norm.preprocessing else ""),
            "axes": _axes(min_size, multiple, None, output=False),
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_input.npy", "sha256": file_sha256(out / "test_input.npy")},
            "pad": {"mode": "reflect"},
            "preprocessing": norm.preprocessing,
        }],
        "outputs": [{
            "id": "denoised",
            "description": "denoised micrograph"
                           + (" in [0, 1] units of the input's range" if norm.to_package_units.__name__ == "range_units"
                              else ""),
            "axes": _axes(min_size, multiple, halo, output=True),
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_output.npy", "sha256": file_sha256(out / "test_output.npy")},
            "postprocessing": norm.postprocessing,
        }],
        "weights": {"onnx": {
            "source": "model.onnx",
            "sha256": file_sha256(out / "model.onnx"),
            "opset_version": int(opset),
            "authors": AUTHORS,
            "comment": (f"emdenoise graph {graph_spec.file} (sha256 {graph_spec.sha256}) with reflection padding "
                        f"{left}/{right} px and the matching crop built in; io tensors '{name_in}' -> '{name_out}'"),
        }},
        "config": {"emdenoise": {
            "card": card.raw,
            "exported_by": f"emdenoise {__version__}",
            "graph_sha256": graph_spec.sha256,
            "reflection_padding": {"before": left, "after": right},
            "calibration": {"gain": gain, "offset": offset} if norm.engine_options else None,
            "normalization_note": norm.note,
        }},
    }
    descr = _build(spec, content, out)
    spec.save_bioimageio_yaml_only(descr, file=out / "rdf.yaml")
    if zip_path:
        if zip_path.exists():
            zip_path.unlink()
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        spec.save_bioimageio_package(descr, output_path=zip_path)
    return out / "rdf.yaml"


def _build(spec, content: dict, root: Path):
    """Validate ``content`` with bioimageio.spec (files resolved under ``root``); refuse a failing package."""
    from bioimageio.spec._internal.validation_context import ValidationContext

    with ValidationContext(root=root, perform_io_checks=True, log_warnings=False):
        descr = spec.build_description(content)
    if descr.validation_summary.status == "failed":
        problems = "; ".join(_spec.summary_failed(descr.validation_summary)) or "no detail given"
        raise UserError(f"bioimageio.spec refused the package it was given ({problems}); please report this.")
    return descr


def check_package(
    source: str | Path, *, devices: tuple[str, ...] = ("CPUExecutionProvider",)
) -> tuple[bool, list[str]]:
    """Run bioimageio.core's test on a package (rdf.yaml, its folder or a zip), offline.

    Parameters
    ----------
    source : path-like
        The package's ``rdf.yaml``, its folder or its zip file.
    devices : tuple of str
        What bioimageio.core may run the ONNX weights on; for ONNX these are ONNX Runtime
        provider names (default the CPU one, so no CUDA library is probed).

    Returns
    -------
    (bool, list of str)
        Whether every check passed, and one line per failed check (name: message).
    """
    _spec.require("bioimageio.spec")
    core = _spec.require("bioimageio.core")
    source = Path(source)
    if source.is_dir():
        source = source / "rdf.yaml"
    summary = core.test_model(str(source), devices=list(devices))
    failed = [
        f"{detail.name}: " + "; ".join(str(error.msg).splitlines()[0] for error in detail.errors)
        for detail in summary.details
        if detail.status == "failed"
    ]
    return summary.status == "passed", failed
