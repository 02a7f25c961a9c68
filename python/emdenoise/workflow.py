"""File-level jobs shared by the CLI and the Fiji bridge: read, denoise, write.

ARCHITECTURE.md conventions: outputs are named after the input and the model, record
provenance, never overwrite without being asked; ``denoise`` over folders skips existing
outputs, continues past bad files and reports a summary.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from emdenoise.engine.repository import choose_default
from emdenoise.engine.validation import check_job_options
from emdenoise.errors import ModelNotFound, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.outputs import check_target, child_path, display_name
from emdenoise.io.tiff import frame_count, iter_tiff_frames, read_tiff_metadata, write_tiff

if TYPE_CHECKING:
    from emdenoise.noise.calibration import CountsCalibration

TIFF_SUFFIXES = (".tif", ".tiff")


def open_frames(path: Path) -> tuple[Iterator[np.ndarray], ImageMetadata, int]:
    """Frames of an image file (lazily for TIFF), its metadata and frame count."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input {path} does not exist; check the path.")
    if path.suffix.lower() in TIFF_SUFFIXES:
        try:
            metadata = read_tiff_metadata(path)
        except UserError:
            raise
        except OSError as error:
            raise UserError(f"{path} cannot be opened ({error.strerror or error}); check its permissions.") from None
        except Exception as error:  # tifffile raises many kinds for corrupt files
            raise UserError(f"{path} is not a readable TIFF file ({error}); re-export it.") from None
        if metadata.extra.get("rgb"):
            raise UserError(f"{path} holds an RGB image; convert it to 32-bit grayscale first.")
        return iter_tiff_frames(path), metadata, frame_count(metadata.shape)
    from emdenoise.io.reader import read_image  # EM formats (rsciio, mrcfile)

    pixels, metadata = read_image(path)
    stack = pixels.reshape((-1,) + pixels.shape[-2:]) if pixels.ndim >= 2 else pixels
    return iter(stack), metadata, frame_count(pixels.shape)


def output_path_for(input_path: Path, output: Path, model_id: str, *, single: bool) -> Path:
    """Where the result of ``input_path`` goes: ``output`` itself for one file named
    ``*.tif``, else ``output/<stem>_denoised-<model>.tif``."""
    if single and output.suffix.lower() in TIFF_SUFFIXES:
        return output
    return child_path(output, f"{input_path.stem}_denoised-{model_id}.tif")


def provenance(info: dict, *, source: Path, counts: "CountsCalibration | None") -> dict[str, str]:
    """Provenance lines for ImageJ's Info (ARCHITECTURE.md, "Provenance")."""
    lines = {
        "model": info["model_id"],
        "model_version": info.get("model_version", ""),
        "graph_sha256": info.get("graph_sha256", "") or "none (classical filter)",
        "version": info.get("emdenoise_version", ""),
        "device": info.get("device", ""),
        "source": display_name(source.name),
    }
    if counts is None:
        lines.update(gain="not needed by this model", offset="not needed by this model")
    else:
        lines.update(
            gain=f"{counts.gain:.6g} ({counts.source})",
            offset=f"{counts.offset:.6g} ({counts.source})",
            dose=f"{counts.dose:.4g} electrons/px per frame ({counts.method}, {counts.quality})",
        )
    lines["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return lines


def warn_on_stderr(message: str) -> None:
    print(f"emdenoise: warning: {message}", file=sys.stderr)


def needs_counts(card: dict) -> bool:
    """True when a model works in counts or states a dose range to check against."""
    return (card.get("normalization") or {}).get("kind") == "counts" or bool(card.get("dose_range"))


def calibrate(first_frame: np.ndarray, metadata: ImageMetadata, card: dict, *, gain, offset, warn) -> "CountsCalibration | None":
    """Gain/offset/dose for a counts model (user's, else the file's, else estimated from
    the mean-variance relation of the first frame; offset 0 is assumed, with a warning,
    when a flat or tiny frame cannot separate gain from offset), warning when the dose is
    outside the card's range (ARCHITECTURE.md, "Counts")."""
    if not needs_counts(card):
        return None
    from emdenoise.noise.calibration import check_dose_range, resolve_counts

    counts = resolve_counts([np.asarray(first_frame, dtype=np.float64)], metadata, gain=gain, offset=offset,
                            assume_offset=0.0)
    if counts.quality == "poor":  # the counts (and the dose below) may be far off: say why
        for note in counts.notes:
            warn(f"{card['id']}: estimated gain/offset are unreliable: {note}")
    message = check_dose_range(counts.dose, card.get("dose_range"))
    if message:
        warn(f"{card['id']}: {message}")
    return counts


def prepare_job(client, first_frame, metadata: ImageMetadata, *, model_id, modality, gain, offset, warn=None):
    """Resolve the model (default for ``modality`` when None) and the counts calibration.

    Returns ``(model_id, counts, calibration)`` where ``calibration`` holds the gain and
    offset to send with the job (estimated ones for counts models, else the user's).
    """
    cards = {card["id"]: card for card in client.list_models()}
    model_id = model_id or choose_default(list(cards.values()), metadata_modality(metadata, modality))
    if model_id not in cards:
        from emdenoise.engine.repository import unknown_model_message

        raise ModelNotFound(unknown_model_message(model_id))
    counts = calibrate(first_frame, metadata, cards[model_id], gain=gain, offset=offset, warn=warn or warn_on_stderr)
    calibration = {"gain": counts.gain, "offset": counts.offset} if counts else {"gain": gain, "offset": offset}
    return model_id, counts, calibration


def metadata_modality(metadata: ImageMetadata, modality: str = "any") -> str:
    """``modality`` when the user chose one, else what the file's metadata says, else ``"any"``."""
    if modality and modality != "any":
        return modality
    from emdenoise.io.modality import modality_of

    return modality_of(metadata) or "any"


def file_modality(path: Path, modality: str = "any") -> str:
    """:func:`metadata_modality` of the file at ``path`` (its metadata only is used)."""
    if modality and modality != "any":
        return modality
    return metadata_modality(open_frames(path)[1])


def denoise_file(
    client,
    input_path: Path,
    output_path: Path,
    *,
    model_id: str | None = None,
    modality: str = "any",
    gain: float | None = None,
    offset: float | None = None,
    overwrite: bool = False,
    progress: bool = False,
    warn=None,
    on_frame=None,
    tile_size: int | None = None,
) -> Path:
    """Denoise one file through ``client`` (embedded or remote) and write an ImageJ TIFF.

    ``on_frame(done, total)`` is called after each result frame is handed to the writer
    (the Fiji bridge reports progress this way); ``progress`` shows a terminal bar.
    """
    checked = check_job_options(gain=gain, offset=offset, tile_size=tile_size)
    gain, offset, tile_size = checked["gain"], checked["offset"], checked["tile_size"]
    check_target(output_path, overwrite=overwrite)
    frames, metadata, count = open_frames(input_path)
    frames, read_error = _remembering(frames)
    first = next(frames, None)
    if count == 0 or first is None:
        raise UserError(f"{input_path} holds no frames; there is nothing to denoise.")
    model_id, counts, calibration = prepare_job(
        client, first, metadata, model_id=model_id, modality=modality, gain=gain, offset=offset, warn=warn
    )
    job = client.denoise(
        itertools.chain([first], frames), model_id, frame_count=count, tile_size=tile_size, **calibration
    )
    info = job.start()
    results: Iterable[np.ndarray] = iter(job)
    if on_frame is not None:
        results = _reporting(results, count, on_frame)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=count, unit="frame", desc=input_path.name, leave=False, disable=None)
    try:
        return write_tiff(
            output_path,
            results,
            metadata,
            provenance=provenance(info, source=input_path, counts=counts),
            overwrite=overwrite,
            frame_total=count,
        )
    except UserError:
        if read_error:  # a remote job fails with the transport's words; the file's own are better
            raise read_error[0] from None
        raise


def _remembering(frames: Iterator[np.ndarray]) -> tuple[Iterator[np.ndarray], list[UserError]]:
    """``frames`` as they are, and a list that receives the error reading them raised, if any.

    A remote client reads the frames in gRPC's sending thread, where a read error only
    cancels the call; the job then fails with a transport message instead of the file's.
    """
    errors: list[UserError] = []

    def frames_of_file() -> Iterator[np.ndarray]:
        try:
            yield from frames
        except UserError as error:
            errors.append(error)
            raise

    return frames_of_file(), errors


def _reporting(results: Iterable[np.ndarray], total: int, on_frame) -> Iterator[np.ndarray]:
    for done, frame in enumerate(results, 1):
        yield frame
        on_frame(done, total)


@dataclass
class Outcome:
    """What happened to one input of a batch."""

    source: Path
    status: str  # written | skipped | failed
    detail: str = ""


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named directly, plus the files directly inside named folders (sorted).

    Raises
    ------
    UserError
        A named folder cannot be listed (permissions).
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            try:
                paths += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            except OSError as error:
                raise UserError(f"cannot list the folder {path} ({error.strerror or error}); check its permissions "
                                "or name the files inside it.") from None
        else:
            paths.append(path)
    return paths


def plan_outputs(inputs: list[Path], output: Path, model_id: str) -> list[tuple[Path, Path | UserError]]:
    """The output of each input, or the error that rules it out, checked before any work.

    Parameters
    ----------
    inputs : list of Path
    output : Path
        Output folder, or a ``.tif`` file for one input.
    model_id : str
        Part of each output name.

    Returns
    -------
    list of (source, target or UserError)
        A name that cannot be made (too long, not a plain name) fails only its input.

    Raises
    ------
    UserError
        Two inputs would be written to the same output, or an output is one of the inputs.
    """
    single = len(inputs) == 1
    if single and output.suffix.lower() in TIFF_SUFFIXES and output.is_dir():
        raise UserError(f"-o {display_name(output)} is an existing folder; give a file name that no folder has, "
                        "or drop the .tif ending to write into a folder.")
    plan: list[tuple[Path, Path | UserError]] = []
    for source in inputs:
        try:
            plan.append((source, output_path_for(source, output, model_id, single=single)))
        except UserError as error:
            plan.append((source, error))
    _refuse_clashes(plan)
    return plan


def _refuse_clashes(plan: list[tuple[Path, Path | UserError]]) -> None:
    """Refuse outputs two inputs share, and outputs that are inputs (raw data is never replaced)."""
    inputs = {_identity(source): source for source, _ in plan}
    claimed: dict[str, Path] = {}
    for source, target in plan:
        if isinstance(target, UserError):
            continue
        key = _identity(target)
        if key in inputs:
            raise UserError(f"the output {display_name(target)} is the input {display_name(inputs[key])}; "
                            "choose another -o so the raw data is kept.")
        if key in claimed:
            raise UserError(f"{display_name(claimed[key])} and {display_name(source)} would both be written to "
                            f"{display_name(target)}; denoise them in separate runs with different -o folders.")
        claimed[key] = source


def _identity(path: Path) -> str:
    """One key per file: the resolved path (symlinks and ``..`` followed)."""
    return os.path.normcase(os.path.realpath(path))


def denoise_many(client, inputs: list[Path], output: Path, *, model_id: str | None, overwrite: bool = False, **options) -> list[Outcome]:
    """Denoise every input into ``output``; skip existing results, continue past failures.

    Outputs are planned before any work (:func:`plan_many`); a file that cannot be read
    or written fails alone, with one sentence in its :class:`Outcome`.
    """
    planned = plan_many(client, inputs, output, model_id=model_id, **options)
    return [denoise_planned(client, source, target, model, overwrite, options) for source, target, model in planned]


def plan_many(client, inputs: list[Path], output: Path, *, model_id: str | None, **options) -> list[tuple[Path, Path | UserError, str]]:
    """``(source, target or UserError, model id)`` for each input, in input order, before any work.

    Each file's metadata picks its default model when ``model_id`` is None; the output
    folder is created. ``denoise --dask`` hands these to Dask workers.
    """
    check_job_options(gain=options.get("gain"), offset=options.get("offset"), tile_size=options.get("tile_size"))
    groups: dict[str, list[Path]] = {}  # model id -> inputs, in order
    if model_id is not None:
        groups[model_id] = list(inputs)
    else:  # each file's own modality (its metadata) picks its default model
        cards = client.list_models()
        for source in inputs:
            try:
                modality = file_modality(source, options.get("modality", "any"))
            except UserError:
                modality = options.get("modality", "any")  # unreadable: fails below with its own sentence
            groups.setdefault(choose_default(cards, modality), []).append(source)
    if not (len(inputs) == 1 and output.suffix.lower() in TIFF_SUFFIXES):
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create the output folder {output} ({error.strerror}); choose another -o.") from None
    planned = {}
    for model, sources in groups.items():
        for source, target in plan_outputs(sources, output, model):
            planned[source] = (source, target, model)
    return [planned[source] for source in inputs]


def denoise_planned(client, source: Path, target: Path | UserError, model_id: str, overwrite: bool, options) -> Outcome:
    """Denoise one planned input (see :func:`plan_many`): skipped when its output exists, failed with a sentence."""
    if isinstance(target, UserError):
        return Outcome(source, "failed", str(target))
    if target.exists() and not target.is_dir() and not overwrite:
        return Outcome(source, "skipped", f"{display_name(target.name)} exists")
    try:
        denoise_file(client, source, target, model_id=model_id, overwrite=overwrite, **options)
    except UserError as error:
        return Outcome(source, "failed", str(error))
    except OSError as error:  # writing: disk full, permissions, a name the file system refuses
        return Outcome(source, "failed", f"{display_name(target)} could not be written ({error.strerror or error}); "
                                         "free space or choose another -o.")
    return Outcome(source, "written", display_name(target))


def _default_model(client, modality: str) -> str:
    return choose_default(client.list_models(), modality)


def summary_table(outcomes: list[Outcome]) -> str:
    """Plain-text table of a batch's outcomes with a totals line."""
    names = [display_name(o.source.name) for o in outcomes]
    width = max([len(name) for name in names] + [4])
    lines = [f"{'file':<{width}}  {'status':<8}  detail"]
    lines += [f"{name:<{width}}  {o.status:<8}  {display_name(o.detail)}" for name, o in zip(names, outcomes)]
    counts = {status: sum(o.status == status for o in outcomes) for status in ("written", "skipped", "failed")}
    lines.append(f"{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed")
    return "\n".join(lines)
