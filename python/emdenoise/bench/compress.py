"""``emdenoise bench compress``: autoencoder latents against standard codecs at the same size.

Seed 002, sec. 2: the autoencoders store a 160x160 crop as 20x20xd latents (64:d) and
decode it with a denoising effect. For every installed autoencoder (cards with task
``encode``) each image is written as a real ``.emz`` file (8-bit latents, zstd) and
decoded; JPEG 2000 and JPEG XL (imagecodecs) code the same noisy counts at the largest
quality that fits the same number of bytes; zstd codes them losslessly. Reported per
method: bytes per pixel, PSNR and SSIM of the decoded image against the clean reference
(simulated data: the expected counts) or, for real micrographs (``--real``), against the
noisy original, and for the autoencoders the seam ratio at tile borders.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emdenoise.bench.report import fmt, markdown_table
from emdenoise.cli_types import positive_int
from emdenoise.compress.seams import seam_ratio
from emdenoise.errors import UserError

CODEC_NAMES = {"jpeg2k": "JPEG 2000", "jpegxl": "JPEG XL"}
#: Steps on each side of a tile border the second seam column also counts (a feathered step).
SEAM_BAND = 3


@dataclass(frozen=True)
class BenchImage:
    """Noisy ``counts`` (uint16) and the ``reference`` they are scored against."""

    name: str
    counts: np.ndarray
    reference: np.ndarray


def simulated_images(clean_images, *, dose: str, size: int, seed: int) -> list[BenchImage]:
    """Poisson counts of clean images at Ede's dose law (seed 001, sec. 3.1), clean counts as reference."""
    from emdenoise.bench.clean import random_crop
    from emdenoise.noise.ede import sample_dose_scale, scale_to_unit

    rng = np.random.default_rng(seed)
    images = []
    for item in clean_images:
        crop = random_crop(item.image, size, rng)
        expected = scale_to_unit(crop).astype(np.float64) * sample_dose_scale(dose, rng)
        counts = rng.poisson(expected).astype(np.uint16)
        images.append(BenchImage(item.name, counts, expected.astype(np.float32)))
    return images


def real_images(paths: list[Path], *, size: int) -> list[BenchImage]:
    """Frame 0 of each real micrograph (centre crop of ``size``), scored against itself."""
    from emdenoise.workflow import open_frames

    images = []
    for path in paths:
        frames, _, _ = open_frames(path)
        frame = np.asarray(next(frames), dtype=np.float64)
        h, w = frame.shape
        ch, cw = min(size, h), min(size, w)
        frame = frame[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
        low = min(float(frame.min()), 0.0)
        if float(frame.max()) - low > 65535:
            raise UserError(f"{path} spans more than 16 bits; the codec comparison needs integer counts below 65536.")
        counts = np.rint(frame - low).astype(np.uint16)
        images.append(BenchImage(path.name, counts, counts.astype(np.float32)))
    return images


def _scores(restored: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    from emdenoise.metrics.error import psnr
    from emdenoise.metrics.ssim import ssim_sbd

    return psnr(restored, reference), ssim_sbd(restored, reference)


def _emz_bytes_and_restore(codec, spec, counts: np.ndarray, folder: Path, *, bits: int, level: int):
    """Write ``counts`` as a real .emz file, read it back and decode it: (bytes, restored)."""
    from emdenoise.compress.emz import EmzWriter, iter_frames, make_header

    encoded = codec.encode_frame(counts, spec)
    header = make_header(spec.info(), frame_shape=counts.shape, frame_count=1, bits=bits, level=level,
                         source={"name": "bench", "dtype": "uint16"}, metadata={})
    path = folder / f"{spec.model_id}.emz"
    with EmzWriter(path, header, overwrite=True) as writer:
        writer.write_frame(encoded)
        writer.close()
    (stored,) = list(iter_frames(path))
    return path.stat().st_size, codec.decode_frame(stored, spec)


def _finite_mean(values: list[float]) -> float | None:
    """Mean of the finite values (a single-tile image has no border, so no seam ratio)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _plain_decode(codec, spec, counts: np.ndarray, bits: int) -> np.ndarray:
    """Tiles encoded and decoded on their own, as seed 002's crops (for the seam comparison)."""
    from emdenoise.compress.quantize import dequantise, quantise

    encoded = codec.encode_frame(counts, spec, halo=0)
    encoded.latents = dequantise(quantise(encoded.latents, bits))
    return codec.decode_frame(encoded, spec, halo=0, seam_width=0)


def run_compress(images: list[BenchImage], model_ids: list[str], *, bits: int = 8, level: int = 19,
                 device: str = "cpu") -> dict:
    """Score every autoencoder and the standard codecs on ``images``.

    Returns
    -------
    dict
        ``rows``: one dict per method (``method``, ``group``, ``bytes_per_pixel``, ``psnr``,
        ``ssim``, ``seam_ratio``, per-image values), in table order.
    """
    from emdenoise.bench.codecs import at_budget, available_codecs, zstd_lossless
    from emdenoise.compress import codec_for
    from emdenoise.engine import Engine

    codec = codec_for(Engine(device=device))
    specs = [codec.spec(model_id) for model_id in model_ids]
    lossy = available_codecs()
    pixels = sum(image.counts.size for image in images)
    rows: dict[str, dict] = {}

    def add(key: str, group: str, nbytes: int, restored, image: BenchImage, tile: int | None = None, seconds=0.0):
        row = rows.setdefault(key, {"method": key, "group": group, "bytes": 0, "psnr": [], "ssim": [], "seam": [],
                                    "band": [], "seconds": 0.0})
        row["bytes"] += int(nbytes)
        p, s = _scores(restored, image.reference)
        row["psnr"].append(p)
        row["ssim"].append(s)
        row["seconds"] += seconds
        if tile is not None:
            row["seam"].append(seam_ratio(restored, tile, reference=image.reference))
            row["band"].append(seam_ratio(restored, tile, reference=image.reference, band=SEAM_BAND))

    with tempfile.TemporaryDirectory(prefix="emdenoise-bench-compress-") as temp:
        for image in images:
            counts = image.counts
            add("uint16 pixels (noisy input)", "reference", counts.nbytes, counts.astype(np.float32), image)
            lossless = zstd_lossless(counts, level=level)
            add("zstd lossless", "reference", lossless.nbytes, lossless.restored, image)
            for spec in specs:
                started = time.perf_counter()
                nbytes, restored = _emz_bytes_and_restore(codec, spec, counts, Path(temp), bits=bits, level=level)
                seconds = time.perf_counter() - started
                add(f"{spec.model_id} (.emz, {bits}-bit latents)", spec.model_id, nbytes, restored, image, spec.tile, seconds)
                plain = _plain_decode(codec, spec, counts, bits)
                add(f"{spec.model_id} tiles alone (no halo, no levelling)", "seams", nbytes, plain, image, spec.tile)
                for name in lossy:
                    coded = at_budget(counts, name, nbytes)
                    add(f"{CODEC_NAMES[name]} at the {spec.model_id} size", spec.model_id, coded.nbytes, coded.restored, image)
    out = []
    for row in rows.values():
        out.append({
            "method": row["method"],
            "group": row["group"],
            "bytes_per_pixel": row["bytes"] / pixels,
            "ratio_vs_uint16": 2.0 * pixels / row["bytes"],
            "psnr": float(np.mean(row["psnr"])),
            "ssim": float(np.mean(row["ssim"])),
            "seam_ratio": _finite_mean(row["seam"]),
            "seam_ratio_band": _finite_mean(row["band"]),
            "psnr_per_image": row["psnr"],
            "ssim_per_image": row["ssim"],
            "seconds_per_megapixel": row["seconds"] / (pixels / 1e6) if row["seconds"] else None,
        })
    return {"rows": out, "images": [image.name for image in images], "pixels": pixels,
            "models": model_ids, "codecs": lossy, "bits": bits, "zstd_level": level}


def verdicts(rows: list[dict]) -> list[str]:
    """One line per autoencoder: its PSNR/SSIM minus each codec's at the same size."""
    lines = []
    for row in rows:
        if not row["method"].endswith("-bit latents)"):
            continue
        rivals = [r for r in rows if r["group"] == row["group"] and r is not row and "JPEG" in r["method"]]
        if not rivals:
            continue
        parts = [f"{r['method'].split(' at ')[0]} {row['psnr'] - r['psnr']:+.2f} dB PSNR, {row['ssim'] - r['ssim']:+.3f} SSIM"
                 for r in rivals]
        word = "beats" if all(row["psnr"] > r["psnr"] for r in rivals) else (
            "loses to" if all(row["psnr"] < r["psnr"] for r in rivals) else "is between")
        lines.append(f"- {row['group']} {word} the codecs at its size: " + "; ".join(parts) + ".")
    return lines


def table(result: dict, *, seams: bool = False) -> str:
    """The Markdown table of :func:`run_compress` (``seams``: the seam comparison rows only)."""
    rows = [r for r in result["rows"] if (r["group"] == "seams") == seams]
    if seams:
        rows = [r for m in result["models"] for r in result["rows"]
                if r["group"] in (m, "seams") and r["method"].startswith(m + " ") and "JPEG" not in r["method"]]
    body = [
        [r["method"], fmt(r["bytes_per_pixel"], 4), fmt(r["ratio_vs_uint16"], 1), fmt(r["psnr"], 2), fmt(r["ssim"], 3),
         fmt(r["seam_ratio"], 2), fmt(r["seam_ratio_band"], 2)]
        for r in rows
    ]
    headers = ["Method", "bytes/pixel", "x vs uint16", "PSNR (dB)", "SSIM", "seam ratio", f"seam ±{SEAM_BAND} px"]
    return markdown_table(headers, body)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench compress``."""
    p = subparsers.add_parser(
        "compress",
        help="seed 002 autoencoder latents (.emz) vs JPEG 2000 / JPEG XL at the same size, zstd lossless",
        description="Bytes per pixel, PSNR and SSIM of decoded .emz files per latent depth, next to standard codecs "
        "at matched sizes.",
    )
    p.add_argument("--clean", type=Path, metavar="DIR",
                   help="clean images: a folder from 'emdenoise simulate' or of TIFFs (default: synthetic lattices)")
    p.add_argument("--n-clean", type=positive_int, default=4, help="synthetic clean images (default: 4)")
    p.add_argument("--size", type=positive_int, default=320, help="crop side in pixels (default: 320, 2x2 tiles)")
    p.add_argument("--dose", choices=("low", "ordinary"), default="ordinary",
                   help="Ede's dose law for the noisy counts (default: ordinary, as the autoencoders were trained)")
    p.add_argument("--real", type=Path, action="append", default=[], metavar="FILE",
                   help="also a real micrograph, scored against its noisy original (repeatable)")
    p.add_argument("--model", action="append", default=[], metavar="ID",
                   help="autoencoder to test (repeatable; default: every installed model with task 'encode')")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per stored latent (default: 8)")
    p.add_argument("--level", type=positive_int, default=19, help="zstd level (default: 19)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where the autoencoders run")
    p.add_argument("--out", type=Path, default=Path("emdenoise-bench/compress"),
                   help="folder for compress.json and compress.md (default: emdenoise-bench/compress)")
    p.set_defaults(func=run)


def _autoencoders(device: str) -> list[str]:
    from emdenoise.engine import Engine

    cards = [c for c in Engine(device=device).list_cards() if c.task == "encode" and "decode" in c.graphs]
    if not cards:
        raise UserError("no autoencoder is installed (no card with task 'encode'); install or export one first.")
    return [c.id for c in sorted(cards, key=lambda c: (int((c.raw.get("latent") or {}).get("depth") or 0), c.id))]


def run(args: argparse.Namespace) -> int:
    """Run ``bench compress`` and print its tables."""
    from emdenoise.bench.clean import load_clean_dir, synthetic_clean_set

    models = args.model or _autoencoders(args.device)
    clean = load_clean_dir(args.clean) if args.clean else synthetic_clean_set(args.n_clean, args.size, args.seed)
    sections = []
    results = {}
    simulated = simulated_images(clean.images, dose=args.dose, size=args.size, seed=args.seed)
    started = time.perf_counter()
    results["simulated"] = run_compress(simulated, models, bits=args.bits, level=args.level, device=args.device)
    sections.append((f"### {clean.description}; {args.dose} dose (Ede), {args.size}x{args.size} crops; scored against "
                     "the clean counts", results["simulated"]))
    if args.real:
        real = real_images(args.real, size=max(args.size, 512))
        results["real"] = run_compress(real, models, bits=args.bits, level=args.level, device=args.device)
        sections.append((f"### Real micrographs ({', '.join(p.name for p in args.real)}), frame 0, centre crop; "
                         "scored against the noisy original (fidelity, not restoration)", results["real"]))
    seconds = time.perf_counter() - started
    lines = ["## bench compress: seed 002 autoencoder latents vs standard codecs at matched sizes", ""]
    for title, result in sections:
        lines += [title, "", table(result), "", *verdicts(result["rows"]), "",
                  "Seams at tile borders (the same latents; decoded with the default halo and levelling, or tile by tile):",
                  "", table(result, seams=True), ""]
    lines += [
        "Bytes are whole files: .emz with its header, JPEG 2000 codestream, JPEG XL codestream, zstd frame. "
        "Codecs get the best quality that fits the autoencoder file's bytes (bisection). PSNR/SSIM: data range of "
        "the reference (SSIM: Wang et al. 2004 Gaussian window). Seam ratio: mean step across 160 px tile borders "
        "over mean step inside tiles, relative to the reference's own (1 = invisible); "
        f"seam ±{SEAM_BAND} px counts the {SEAM_BAND} steps on each side of a border as border steps too.",
        f"({seconds:.1f} s)",
    ]
    markdown = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compress.md").write_text(markdown + "\n", encoding="utf-8")
    (args.out / "compress.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(markdown)
    return 0
