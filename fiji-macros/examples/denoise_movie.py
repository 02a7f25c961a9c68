"""Denoise a movie in a headless ImageJ/Fiji started from Python, and score it frame by frame.

A series of the same field has no ground truth, but consecutive frames check each other
(seed 004, Noise2Atom): for each pair of consecutive frames this script prints

* CSS, the consecutive structural similarity of eq. 10, raw and denoised, on one shared
  intensity scale (the raw movie's range in counts), and
* the paired-frame error ``mean((f(A) - B)^2) - mean(B)`` in counts^2, unbiased for
  independent Poisson noise, raw (which estimates the dose) and denoised.

CSS alone rewards blur; read it next to the error. The denoised movie is saved as
``<name>_denoised-<model>.tif`` (the command line's name, provenance in its Info) and the
table as ``<name>_per-frame.csv`` in the output folder.

    python denoise_movie.py movie.tif out/ --model ede-kernel-stem-5
    python denoise_movie.py movie.tif out/ --server gpu-node:50051 --gain 12.5 --offset 100
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def per_pair_scores(raw_counts: np.ndarray, denoised_counts: np.ndarray) -> list[dict[str, float]]:
    """CSS and paired-frame error of each consecutive pair, raw and denoised (counts in, counts^2 out)."""
    from emdenoise.metrics import SharedScaling, css, paired_frame_mse

    scale = SharedScaling.from_frames(raw_counts)
    rows = []
    for t in range(len(raw_counts) - 1):
        row = {"pair": f"{t + 1}-{t + 2}"}
        for name, frames in (("raw", raw_counts), ("denoised", denoised_counts)):
            row[f"css_{name}"] = css(scale(frames[t]), scale(frames[t + 1]))
            row[f"paired_mse_{name}"] = 0.5 * (paired_frame_mse(frames[t], raw_counts[t + 1])
                                               + paired_frame_mse(frames[t + 1], raw_counts[t]))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("movie", type=Path, help="TIFF stack: frames of the same field")
    parser.add_argument("output", type=Path, help="folder for the denoised movie and the table")
    parser.add_argument("--model", help="model id (default: the default model for --modality)")
    parser.add_argument("--modality", default="any")
    parser.add_argument("--server", help="host:port of 'emdenoise serve' (default: embedded engine)")
    parser.add_argument("--gain", type=float, help="detector counts per electron (default: estimated)")
    parser.add_argument("--offset", type=float, help="detector reading at zero dose (default: estimated)")
    parser.add_argument("--fiji", type=Path, help="a Fiji.app to use instead of ImageJ1")
    args = parser.parse_args(argv)

    from emdenoise.bench.series import calibrate
    from emdenoise.errors import UserError
    from emdenoise.fiji import start_imagej, to_numpy

    try:
        ij = start_imagej(args.fiji, headless=True, server=args.server)
        movie = ij.open_image(args.movie)
        if movie is None:
            raise UserError(f"ImageJ cannot open {args.movie}; pass a TIFF stack.")
        if movie.getStackSize() < 2:
            raise UserError(f"{args.movie.name} has one frame; the scores need two or more frames of the same field.")
        result = ij.denoise(movie, args.model, server=args.server, modality=args.modality,
                            gain=args.gain, offset=args.offset)
    except UserError as error:
        print(f"denoise_movie: {error}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / str(result.image.getTitle())
    ij.ij("ij.IJ").saveAsTiff(result.image, str(target))

    raw, _ = to_numpy(movie)
    denoised, _ = to_numpy(result.image)
    raw = raw.reshape((-1,) + raw.shape[-2:]).astype(np.float64)
    denoised = denoised.reshape(raw.shape).astype(np.float64)
    counts = calibrate(raw, args.gain, args.offset)
    to_counts = lambda frames: (frames - counts["offset"]) / counts["gain"]  # noqa: E731
    rows = per_pair_scores(to_counts(raw), to_counts(denoised))

    table = args.output / f"{args.movie.stem}_per-frame.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{args.movie.name}: {len(raw)} frames, model {result.model}, gain {counts['gain']:.4g}, "
          f"offset {counts['offset']:.6g} ({counts['source']})")
    print(f"{'pair':>7} {'CSS raw':>9} {'CSS den.':>9} {'MSE raw':>10} {'MSE den.':>10}   (MSE in counts^2)")
    for row in rows:
        print(f"{row['pair']:>7} {row['css_raw']:9.4f} {row['css_denoised']:9.4f} "
              f"{row['paired_mse_raw']:10.4g} {row['paired_mse_denoised']:10.4g}")
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "pair"}
    print(f"{'mean':>7} {means['css_raw']:9.4f} {means['css_denoised']:9.4f} "
          f"{means['paired_mse_raw']:10.4g} {means['paired_mse_denoised']:10.4g}")
    print(f"wrote {target} and {table}")
    ij.close()
    return 0


if __name__ == "__main__":
    from emdenoise.fiji import exit_process

    exit_process(main())  # not sys.exit: the JVM's threads are still running (see exit_process)
