"""Denoise every TIFF of a folder in a headless ImageJ/Fiji started from Python.

A lab workflow for a processing node without a desktop: ImageJ (or the lab's own
Fiji.app, through pyimagej) runs inside this Python, each file is opened as an ImagePlus
and pushed through emdenoise (the embedded engine, or the server given with --server)
without temporary files, and the result is saved with ImageJ under the name the command
line gives it, ``<name>_denoised-<model>.tif``. Files whose result exists are skipped; a
file that fails is reported and the batch goes on. The outputs equal those of
``emdenoise denoise IN -o OUT --model MODEL``.

    python denoise_folder.py /data/raw /data/denoised --model ede-kernel-tem-7
    python denoise_folder.py /data/raw /data/denoised --server gpu-node:50051 --fiji ~/Fiji.app

Between open and save, any ImageJ step a lab already uses can go in (``ij.IJ.run(imp,
"Bin...", "x=2 y=2")``; with a Fiji.app, headless Fiji runs the menu commands too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", type=Path, help="folder of TIFF files")
    parser.add_argument("output", type=Path, help="folder for the denoised files")
    parser.add_argument("--model", help="model id (default: the default model for --modality)")
    parser.add_argument("--modality", default="any", help="tem, stem, hrtem... (picks the default model)")
    parser.add_argument("--server", help="host:port of 'emdenoise serve' (default: embedded engine)")
    parser.add_argument("--fiji", type=Path, help="a Fiji.app to use instead of ImageJ1")
    args = parser.parse_args(argv)

    from emdenoise.errors import UserError
    from emdenoise.fiji import start_imagej

    try:
        ij = start_imagej(args.fiji, headless=True, server=args.server)
    except UserError as error:
        print(f"denoise_folder: {error}", file=sys.stderr)
        return 2
    IJ = ij.ij("ij.IJ")
    args.output.mkdir(parents=True, exist_ok=True)
    written = skipped = failed = 0
    for path in sorted(args.input.iterdir()):
        if path.suffix.lower() not in (".tif", ".tiff"):
            continue
        if args.model and (args.output / f"{path.stem}_denoised-{args.model}.tif").exists():
            print(f"skipped {path.name}: result exists")
            skipped += 1
            continue
        imp = ij.open_image(path)
        if imp is None:
            print(f"failed {path.name}: ImageJ cannot open it")
            failed += 1
            continue
        try:
            result = ij.denoise(imp, args.model, server=args.server, modality=args.modality)
        except UserError as error:
            print(f"failed {path.name}: {error}")
            failed += 1
            continue
        target = args.output / str(result.image.getTitle())
        IJ.saveAsTiff(result.image, str(target))
        print(f"wrote {target} ({result.image.getStackSize()} frames, {result.seconds:.2f} s)")
        written += 1
    print(f"denoise_folder: {written} written, {skipped} skipped, {failed} failed")
    ij.close()
    return 1 if failed else 0


if __name__ == "__main__":
    from emdenoise.fiji import exit_process

    exit_process(main())  # not sys.exit: the JVM's threads are still running (see exit_process)
