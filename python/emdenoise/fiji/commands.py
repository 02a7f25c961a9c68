"""EM Denoise, EM Server Settings and EM Benchmark, served in this Python process.

In an ImageJ started from Python (:mod:`emdenoise.fiji.launch`) the command listener
hands ``run("EM ...", options)`` here instead of to the macro files of
``fiji-macros/emdenoise/``. Each handler does what its macro version does (same
options, same window titles, same log lines) but moves pixels through memory: no job
folder, no worker process.

Results appear as ImageJ users expect (issue 8): a new 32-bit window named after the
input and the model, the input's calibration, labels and dimensions, provenance in
Image > Show Info; errors as one sentence (a message in the GUI, a Log line in batch
mode), never a Java stack trace; Esc cancels a running job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from emdenoise.errors import InvalidInput, UserError
from emdenoise.fiji import imageplus
from emdenoise.fiji.clients import EMBEDDED, ClientPool, default_pool, server_of
from emdenoise.fiji.denoise import Cancelled, convert_to_input_type, denoise_imageplus
from emdenoise.fiji.model_labels import choice_label, model_id, recorded_options
from emdenoise.fiji.options import Field, ask, checkbox, choice, number, optional_number, parse_macro_options, string

SERVER_PREF = "emdenoise.server"
MODEL_PREF = "emdenoise.model"
MODALITIES = ("any", "tem", "stem", "tem+stem", "hrtem")
OUTPUT_TYPES = ("32-bit float", "same as input")


def _j(name: str):
    from jpype import JClass

    return JClass(name)


@dataclass
class Context:
    """What a handler needs from the session it runs in.

    ``options`` is the macro's option string, or None when the user chose the command
    from a menu (then a dialog asks). ``interactive`` is False in batch mode or without
    a display, where messages go to the Log instead of dialogs.
    """

    command: str
    options: str | None
    pool: ClientPool = field(default_factory=lambda: default_pool)
    headless: bool = False

    @property
    def batch(self) -> bool:
        return bool(_j("ij.macro.Interpreter").isBatchMode()) or self.headless

    def prefs(self, key: str, default: str) -> str:
        return str(_j("ij.Prefs").get(key, default))

    def set_pref(self, key: str, value: str) -> None:
        _j("ij.Prefs").set(key, value)

    def log(self, line: str) -> None:
        _j("ij.IJ").log(line)

    def status(self, line: str) -> None:
        _j("ij.IJ").showStatus(line)
        if self.batch:
            self.log(line)

    def fail(self, message: str) -> None:
        """Say what went wrong: a Log line in batch mode, a message box otherwise."""
        if self.batch:
            self.log(f"{self.command}: error: {message}")
        else:
            _j("ij.IJ").showMessage(self.command, message)

    def values(self, fields: list[Field], message: str = "") -> dict[str, object] | None:
        """Options from the macro string, else from a dialog (None: the user cancelled)."""
        if self.options is not None:
            return parse_macro_options(self.options, fields)
        if self.headless:
            raise UserError(
                f"{self.command} needs its options when ImageJ has no display; call it as "
                f'run("{self.command}", "key=value ...") (the Macro Recorder shows the keys).'
            )
        recorder = _j("ij.plugin.frame.Recorder")
        if recorder.record:
            recorder.setCommand(self.command)  # the listener consumed the command before ImageJ could
        return ask(self.command, fields, message)

    def record(self, model: str | None = None) -> None:
        """Write the ``run(...)`` line of a dialog-driven command into the Macro Recorder.

        ``model``: the id that ran, recorded as ``model=ID`` in place of the dialog's
        choice (``default`` or a labelled item), so a replayed macro runs the same model.
        """
        recorder = _j("ij.plugin.frame.Recorder")
        if self.options is None and recorder.record:
            if model:
                options = recorder.getCommandOptions()
                if options is not None:
                    recorder.resetCommandOptions()
                    for key, value in recorded_options(str(options), model):
                        if value is None:
                            recorder.recordOption(key)
                        else:
                            recorder.recordOption(key, value)
            recorder.saveCommand()


def current_image():
    """The image a command works on (the batch-mode image of this macro, or the front window)."""
    return _j("ij.WindowManager").getCurrentImage()


def show(imp) -> None:
    """Open ``imp`` as a window, or as the current image of a batch-mode macro."""
    imp.show()


# -- EM Denoise --------------------------------------------------------------------------
def denoise_fields(ctx: Context) -> tuple[list[Field], str]:
    server = ctx.prefs(SERVER_PREF, EMBEDDED)
    models = ["default"]
    message = ""
    last = ctx.prefs(MODEL_PREF, "default")
    if ctx.options is None:  # the dialog's model chooser, from ListModels: "id | MODALITY | dose | speed"
        try:
            cards = ctx.pool.get(server).list_models()
            models += [choice_label(c) for c in sorted(cards, key=lambda c: c["id"]) if c.get("task") == "denoise"]
        except UserError as error:
            message = f"Could not list models: {error}"
        last = next((label for label in models if model_id(label) == last), "default")
    fields = [
        choice("Model", models, last),
        choice("Modality (for the default model)", MODALITIES, "any"),
        string("Server", server),
        number("Tile size", 0, 0, "px (0 = model's own)"),
        number("Gain", 0, 4, "counts per electron (0 = estimate)"),
        number("Offset", 0, 2, "counts at zero dose"),
        choice("Output type", OUTPUT_TYPES, OUTPUT_TYPES[0]),
        checkbox("Residual image (raw - denoised)"),
        checkbox("Preview on the selection (current frame only)"),
    ]
    note = ("Model: id | modality | dose range the model was trained for | speed;\n'default' picks the file's "
            "(else the chosen modality's) default model.\n"
            "Results are 32-bit float unless 'same as input' is chosen.\n'embedded' runs the model in this "
            "Python process; host:port uses a server.\nPress Esc to cancel a running job.")
    return fields, note + ("\n" + message if message else "")


def em_denoise(ctx: Context) -> None:
    """``run("EM Denoise", "model=... modality=... server=... tile=... gain=... offset=...
    output=[...] residual preview")`` on the current image."""
    imp = current_image()
    imageplus.check_greyscale(imp)
    fields, note = denoise_fields(ctx)
    values = ctx.values(fields, note)
    if values is None:
        return
    model = model_id(str(values["model"]))
    ctx.set_pref(MODEL_PREF, model)
    server = str(values["server"]) or EMBEDDED
    source = imp
    base = imageplus.base_name(str(imp.getTitle()))
    if values["preview"]:
        source = imp.crop()  # the current frame, cut to the selection's bounds
        source.setTitle(f"{base}_preview.tif")
    ij = _j("ij.IJ")
    total = int(source.getStackSize())

    def progress(done: int, count: int) -> None:
        ij.showProgress(done, count)
        ij.showStatus(f"{ctx.command}: frame {done}/{count} (Esc cancels)")

    warnings: list[str] = []  # a dose outside the card's range: in the Log and on the status line
    result = denoise_imageplus(
        source,
        None if model in ("", "default") else model,
        client=ctx.pool.get(server),
        tile=int(values["tile"]) or None,
        modality=str(values["modality"]),
        gain=optional_number(values["gain"]),
        offset=optional_number(values["offset"]),
        residual=bool(values["residual"]),
        on_frame=progress,
        should_cancel=ij.escapePressed,
        warn=lambda message: (ctx.log(f"{ctx.command}: warning: {message}"), warnings.append(message)),
    )
    ij.showProgress(1.0)
    if values["preview"]:
        result.image.setTitle(f"{base}_preview-{result.model}.tif")
    notes = list(result.notes) + warnings
    bits = int(imp.getBitDepth())
    if values["output"] == "same as input" and bits in (8, 16):
        convert_to_input_type(result.image, bits)
    if result.residual is not None:
        show(result.residual)
    show(result.image)  # shown last: the result is the current image afterwards
    ctx.record(model=result.model)
    where = f"server {server}" if server_of(server) else "embedded engine"
    line = (f"{ctx.command}: {imp.getTitle()} -> {result.image.getTitle()} ({total} frames, "
            f"{result.seconds:.2f} s, {where} on {result.info.get('device', '?')})")
    if notes:
        line += "; " + "; ".join(notes)
    ctx.status(line)


# -- EM Server Settings ------------------------------------------------------------------
def em_server_settings(ctx: Context) -> None:
    """``run("EM Server Settings", "address=host:port")`` (or ``address=embedded``)."""
    fields = [string("Address", ctx.prefs(SERVER_PREF, EMBEDDED), 24)]
    note = ("'embedded': models run in this Python process (no server needed).\n"
            "host:port: a running 'emdenoise serve', e.g. 127.0.0.1:50051.")
    values = ctx.values(fields, note)
    if values is None:
        return
    address = str(values["address"]) or EMBEDDED
    cards = ctx.pool.get(address).list_models()  # checks the address now, not at the next job
    count = sum(1 for card in cards if card.get("task") == "denoise")
    ctx.set_pref(SERVER_PREF, address)
    ctx.record()
    ctx.status(f"{ctx.command}: using {address} ({count} denoising models)")


# -- EM Benchmark -------------------------------------------------------------------------
BENCHMARK_COLUMNS = ("CSS", "Paired MSE (counts^2)", "x Unfiltered MSE", "s per megapixel", "Time ratio")


def em_benchmark(ctx: Context) -> None:
    """``run("EM Benchmark", "models=... baselines=... frames=8 crop=256")`` on the current stack.

    CSS of consecutive restored frames (seed 004 eq. 10) and the paired-frame error of
    every method, with time per megapixel, as ``emdenoise bench series`` computes them.
    """
    from emdenoise.bench import series
    from emdenoise.bench.methods import classical_method, engine_methods, select_baselines

    imp = current_image()
    imageplus.check_greyscale(imp)
    if int(imp.getStackSize()) < 2:
        raise InvalidInput(f"'{imp.getTitle()}' has one frame; CSS and the paired-frame error need two or "
                           "more frames of the same field.")
    fields = [
        string("Models", ctx.prefs(MODEL_PREF, "default"), 30),
        string("Baselines", "gaussian_3x3,median_3x3,wiener,nl_means", 30),
        number("Frames", 8, 0, "first frames used (0 = all)"),
        number("Crop", 256, 0, "px, centred (0 = whole frame)"),
    ]
    values = ctx.values(fields, "Models: comma-separated ids ('default' adds none).\n"
                                "Baselines: comma-separated keys, 'all' for the papers' tables, 'none' for none.")
    if values is None:
        return
    models = [m.strip() for m in str(values["models"]).split(",") if m.strip() and m.strip() != "default"]
    baselines = str(values["baselines"]).strip()
    if baselines == "all":
        baselines = ""
    if baselines and baselines != "none" and "unfiltered" not in baselines.split(","):
        baselines = "unfiltered," + baselines  # the row every error is compared with
    stack = series_array(imp, frames=int(values["frames"]), crop=int(values["crop"]))
    methods = [classical_method(b) for b in select_baselines(series.SERIES_KEYS, baselines or None)]
    if models:  # the session's embedded engine: its models stay loaded between commands
        methods += engine_methods(models, engine=ctx.pool.get(None).engine)
    if not methods:
        raise UserError("no methods to benchmark; give model ids or baselines other than 'none'.")
    calibration = series.calibrate(stack, None, None)
    counts = (stack - calibration["offset"]) / calibration["gain"]
    scores = series.run_series(methods, counts)["scores"]
    reference = next((m for m in methods if m.key == "gaussian_3x3"), methods[0])  # as bench series quotes times
    unfiltered = next((m.name for m in methods if m.key == "unfiltered"), None)
    base_error = float(np.mean(scores[unfiltered]["paired_mse"])) if unfiltered else float("nan")
    table = _j("ij.measure.ResultsTable")()
    lines = []
    for m in methods:
        css = float(np.mean(scores[m.name]["css"]))
        error = float(np.mean(scores[m.name]["paired_mse"]))
        row = (css, error, error / base_error, m.seconds_per_megapixel,
               m.seconds_per_megapixel / reference.seconds_per_megapixel)
        table.incrementCounter()
        table.addValue("Method", m.name)
        for column, value in zip(BENCHMARK_COLUMNS, row):
            table.addValue(column, float(value))
        lines.append(",".join([m.name, *(f"{v:.4g}" for v in row)]))
    ctx.record()
    if not ctx.batch:
        table.show(f"EM Benchmark of {imp.getTitle()}")
    else:  # batch mode shows no windows: the table goes to the Log (stdout without ImageJ's window)
        ctx.log(f"{ctx.command}: {imp.getTitle()} ({counts.shape[0]} frames; time ratios against {reference.name})")
        ctx.log(",".join(["Method", *BENCHMARK_COLUMNS]) + "\n" + "\n".join(lines))
    _j("ij.IJ").showStatus(f"{ctx.command}: done")


def series_array(imp, *, frames: int = 0, crop: int = 0) -> np.ndarray:
    """The first ``frames`` frames of ``imp`` (all when 0), centre-cropped, as float64 ``(T, Y, X)``."""
    stack = []
    for index, frame in enumerate(imageplus.iter_frames(imp)):
        if frames and index >= frames:
            break
        if crop:
            height, width = frame.shape
            ch, cw = min(crop, height), min(crop, width)
            y, x = (height - ch) // 2, (width - cw) // 2
            frame = frame[y : y + ch, x : x + cw]
        stack.append(frame.astype(np.float64))
    data = np.stack(stack)
    if not np.isfinite(data).all():
        raise InvalidInput(f"'{imp.getTitle()}' contains NaN or infinite pixels; a series must be finite.")
    return data


#: Command name -> handler. Names are the ones fixed in ARCHITECTURE.md.
HANDLERS: dict[str, Callable[[Context], None]] = {
    "EM Denoise": em_denoise,
    "EM Server Settings": em_server_settings,
    "EM Benchmark": em_benchmark,
    "EM Open": lambda ctx: _em_open(ctx),
}


def _em_open(ctx: Context) -> None:
    from emdenoise.fiji.em_open import em_open  # the EM readers load only when a file is opened

    em_open(ctx)


def run_command(ctx: Context) -> str | None:
    """Run one EM command; every failure ends as one sentence for the user.

    Returns
    -------
    str or None
        The sentence of a failure (a cancelled command is one too), None on success; a
        batch run (``emdenoise fiji launch --batch``) exits 1 when it saw one.
    """
    started = time.monotonic()
    try:
        HANDLERS[ctx.command](ctx)
    except Cancelled:
        ctx.status(f"{ctx.command}: cancelled")
        return "cancelled"
    except UserError as error:
        ctx.fail(str(error))
        return str(error)
    except Exception as error:  # anything else still reaches the user as one sentence
        import traceback

        traceback.print_exc()
        message = (f"emdenoise failed unexpectedly ({type(error).__name__}: {error}); "
                   f"the details are on the terminal that started ImageJ ({time.monotonic() - started:.1f} s in).")
        ctx.fail(message)
        return message
    return None
