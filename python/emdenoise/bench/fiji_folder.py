"""``emdenoise bench fiji-folder``: ``Denoise_Folder.ijm`` in real ImageJ against ``emdenoise denoise FOLDER``.

Issue 20 asks that the lab's folder macro, run in ImageJ's batch mode, take at most 1.2x
the time of the command line on the same files. Both run as a user starts them, as fresh
processes on the same folder of TIFF files: ``emdenoise denoise IN -o OUT --model M`` and
``[xvfb-run -a] java -jar ij.jar -batch Denoise_Folder.ijm "in=[IN] out=[OUT] model=M"``
with the EM commands installed into a scratch ImageJ folder (its own HOME and temp
folder, so no user setting applies). Each round runs both, in alternating order; the
ratio of each round and the median ratio are printed. ``--per-job`` adds ImageJ with a
worker started per image (``EMDENOISE_FIJI_WORKER=job``, how every command ran before the
warm worker) in the same rounds.

The files are the bundled STEM sample, tiled to ``--size`` pixels and shifted per file;
the outputs of ImageJ and of the command line are checked to be identical.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The STEM default model (the sample is HAADF-STEM): a U-Net, as labs run it.
DEFAULT_MODEL = "sim-vstunet32-stem-r2"
#: The issue's bar: ImageJ's time over the command line's.
BAR = 1.2


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fiji-folder",
        help="Denoise_Folder.ijm in real ImageJ (batch mode) vs 'emdenoise denoise FOLDER' on the same files",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--files", type=int, default=10, help="files in the folder (default: 10)")
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels (default: 1024)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model id (default: {DEFAULT_MODEL})")
    p.add_argument("--rounds", type=int, default=2, help="rounds of both runs (default: 2); the median ratio is reported")
    p.add_argument("--per-job", action="store_true", help="also time ImageJ with a worker started per image")
    p.add_argument("--ij-jar", type=Path, default=Path(os.environ.get("EMDENOISE_IJ_JAR", "/usr/share/java/ij.jar")),
                   help="ImageJ 1.x jar (default: $EMDENOISE_IJ_JAR or /usr/share/java/ij.jar)")
    p.add_argument("--memory", default="2g", help="ImageJ's Java heap (default: 2g)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=run)


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` uint16 TIFF files of ``size`` x ``size`` pixels made from the bundled sample."""
    import importlib.resources

    import numpy as np
    import tifffile

    sample = tifffile.imread(Path(str(importlib.resources.files("emdenoise") / "data" / "sample_srtio3_haadf.tif")))
    reps = (-(-size // sample.shape[0]), -(-size // sample.shape[1]))
    tiled = np.tile(sample, reps)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        frame = np.roll(tiled, 17 * index, axis=(0, 1))[:size, :size]
        path = folder / f"frame{index:02d}.tif"
        tifffile.imwrite(path, np.ascontiguousarray(frame))
        paths.append(path)
    return paths


def imagej_folder(root: Path) -> tuple[Path, dict]:
    """A scratch ImageJ folder with the EM commands installed, and the environment to run it in."""
    from emdenoise.fiji.install import install

    (root / "plugins").mkdir(parents=True, exist_ok=True)
    (root / "macros").mkdir(exist_ok=True)
    install(root)
    home, temp = root / "home", root / "temp"
    home.mkdir(exist_ok=True)
    temp.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(HOME=str(home), TMPDIR=str(temp),
               _JAVA_OPTIONS=f"-Djava.io.tmpdir={temp} -Duser.home={home}")
    return root / "macros" / "emdenoise" / "Denoise_Folder.ijm", env


def timed(argv: list[str], *, env: dict, cwd: Path, expect: str, timeout: float = 3600) -> float:
    """Wall seconds of ``argv``; its output must contain ``expect`` (else a UserError with the output's end)."""
    from emdenoise.errors import UserError

    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    elapsed = time.perf_counter() - started
    said = done.stdout + done.stderr
    if done.returncode != 0 or expect not in said:
        raise UserError(f"'{' '.join(argv[:6])} ...' failed (exit {done.returncode}): {said.strip()[-600:]}")
    return elapsed


def imagej_argv(ij_jar: Path, macro: Path, arg: str, *, plugins: Path, memory: str) -> list[str]:
    """``java -jar ij.jar -batch MACRO ARG``, under ``xvfb-run -a`` when there is no display."""
    argv = ["java", f"-Xmx{memory}", f"-Dplugins.dir={plugins}", "-jar", str(ij_jar), "-batch", str(macro), arg]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        argv = ["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", *argv]
    return argv


def same_outputs(first: Path, second: Path) -> bool:
    """Whether two folders hold the same TIFF files with identical pixels."""
    import numpy as np
    import tifffile

    names = sorted(p.name for p in first.glob("*.tif"))
    if not names or names != sorted(p.name for p in second.glob("*.tif")):
        return False
    return all(np.array_equal(tifffile.imread(first / n), tifffile.imread(second / n)) for n in names)


def measure(work: Path, *, files: int, size: int, model: str, rounds: int, per_job: bool,
            ij_jar: Path, memory: str) -> dict:
    """Time the command line and ImageJ on the same folder, ``rounds`` times; see the module's description."""
    from emdenoise.errors import UserError

    if not ij_jar.is_file():
        raise UserError(f"{ij_jar} is missing; install ImageJ (Debian: apt-get install imagej) or pass --ij-jar.")
    if shutil.which("java") is None:
        raise UserError("java is not on PATH; install a Java runtime.")
    raw = work / "raw"
    make_files(raw, files, size)
    root = work / "ImageJ"
    macro, imagej_env = imagej_folder(root)
    cli_env = dict(os.environ)
    written = f"Denoise_Folder: {files} written"
    kinds = ["cli", "imagej"] + (["imagej_per_job"] if per_job else [])
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_index in range(rounds):
        order = kinds if round_index % 2 == 0 else list(reversed(kinds))
        for kind in order:
            out = work / f"out-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            if kind == "cli":
                argv = [sys.executable, "-m", "emdenoise", "denoise", str(raw), "-o", str(out), "--model", model]
                times[kind].append(timed(argv, env=cli_env, cwd=work, expect=f"{files} written"))
                continue
            env = dict(imagej_env)
            if kind == "imagej_per_job":
                env["EMDENOISE_FIJI_WORKER"] = "job"
            argv = imagej_argv(ij_jar, macro, f"in=[{raw}] out=[{out}] model={model}", plugins=root, memory=memory)
            times[kind].append(timed(argv, env=env, cwd=root, expect=written))
        print("round " + str(round_index + 1) + ": " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in kinds), flush=True)
    identical = all(same_outputs(work / "out-cli", work / f"out-{kind}") for kind in kinds[1:])
    cli = statistics.median(times["cli"])
    result = {
        "files": files, "size": size, "model": model, "rounds": rounds, "times_s": times,
        "median_s": {kind: statistics.median(values) for kind, values in times.items()},
        "ratios": [i / c for i, c in zip(times["imagej"], times["cli"])],
        "outputs_identical": identical,
    }
    result["ratio"] = statistics.median(result["ratios"])
    result["overhead_per_file_s"] = (result["median_s"]["imagej"] - cli) / files
    if per_job:
        result["ratio_per_job"] = statistics.median(i / c for i, c in zip(times["imagej_per_job"], times["cli"]))
    return result


def report(result: dict) -> str:
    """The lines ``run`` prints."""
    median = result["median_s"]
    lines = [
        f"{result['files']} files of {result['size']}x{result['size']} uint16, model {result['model']}, "
        f"{result['rounds']} rounds (median wall time):",
        f"  emdenoise denoise FOLDER          {median['cli']:8.2f} s",
        f"  Denoise_Folder.ijm (warm worker)  {median['imagej']:8.2f} s   ratio {result['ratio']:.3f} "
        f"(bar <= {BAR}: {'met' if result['ratio'] <= BAR else 'NOT met'}); "
        f"{result['overhead_per_file_s']:+.3f} s per file",
    ]
    if "ratio_per_job" in result:
        lines.append(f"  Denoise_Folder.ijm (worker per image) {median['imagej_per_job']:5.2f} s   "
                     f"ratio {result['ratio_per_job']:.3f}")
    lines.append(f"  per-round ratios: {', '.join(f'{r:.3f}' for r in result['ratios'])}; "
                 f"outputs identical: {'yes' if result['outputs_identical'] else 'NO'}")
    return "\n".join(lines)


def run(args) -> int:
    from emdenoise.errors import UserError

    if args.files < 1 or args.rounds < 1 or args.size < 16:
        raise UserError("--files and --rounds must be >= 1 and --size >= 16.")
    work = args.work or Path(tempfile.mkdtemp(prefix="emdenoise-bench-fiji-"))
    try:
        result = measure(work, files=args.files, size=args.size, model=args.model, rounds=args.rounds,
                         per_job=args.per_job, ij_jar=args.ij_jar, memory=args.memory)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["outputs_identical"] else 1
