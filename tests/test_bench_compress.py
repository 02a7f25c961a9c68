"""``emdenoise bench compress`` on one small image: real .emz sizes, codecs held to the same
budget, the lossless row exact, the table and JSON written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emdenoise.bench.compress import BenchImage, run_compress
from emdenoise.cli import main
from emdenoise.compress.emz import EmzWriter, make_header
from emdenoise.engine import Engine

pytest.importorskip("imagecodecs", reason="bench compress compares with imagecodecs' JPEG 2000 / JPEG XL")


@pytest.fixture(scope="module")
def autoencoder():
    cards = [c for c in Engine(device="cpu").list_cards() if c.task == "encode"]
    return sorted(cards, key=lambda c: c.id)[0].id


def test_codecs_get_the_autoencoder_files_budget_and_lossless_is_exact(autoencoder):
    rng = np.random.default_rng(61)
    reference = (np.add.outer(np.sin(np.arange(170) / 6), np.cos(np.arange(200) / 5)) + 3) * 40
    counts = rng.poisson(reference).astype(np.uint16)
    result = run_compress([BenchImage("test", counts, reference.astype(np.float32))], [autoencoder])
    rows = {row["method"]: row for row in result["rows"]}
    noisy, lossless = rows["uint16 pixels (noisy input)"], rows["zstd lossless"]
    assert noisy["bytes_per_pixel"] == 2.0 and lossless["psnr"] == noisy["psnr"] and lossless["bytes_per_pixel"] < 2
    ae = next(row for name, row in rows.items() if name.startswith(autoencoder + " (.emz"))
    assert 0 < ae["bytes_per_pixel"] < lossless["bytes_per_pixel"] and ae["seam_ratio"] is not None
    codecs = [row for name, row in rows.items() if name.endswith(f"at the {autoencoder} size")]
    assert len(codecs) == len(result["codecs"]) >= 1
    for row in codecs:  # the best quality that fits the .emz file's bytes
        assert row["bytes_per_pixel"] <= ae["bytes_per_pixel"] and np.isfinite(row["psnr"])


def test_cli_prints_the_table_and_writes_json(autoencoder, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "compress", "--n-clean", "1", "--size", "160", "--model", autoencoder, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Method | bytes/pixel |" in printed and f"{autoencoder} (.emz, 8-bit latents)" in printed
    assert "tiles alone (no halo, no levelling)" in printed
    saved = json.loads((out / "compress.json").read_text())
    assert saved["simulated"]["models"] == [autoencoder] and (out / "compress.md").read_text().strip() in printed


def test_emz_bytes_in_the_table_are_the_files_bytes(autoencoder, tmp_path):
    from emdenoise.compress import codec_for

    codec = codec_for(Engine(device="cpu"))
    spec = codec.spec(autoencoder)
    counts = np.random.default_rng(62).poisson(20, size=(160, 160)).astype(np.uint16)
    header = make_header(spec.info(), frame_shape=counts.shape, frame_count=1, bits=8, level=19,
                         source={"name": "bench", "dtype": "uint16"}, metadata={})
    with EmzWriter(tmp_path / "one.emz", header) as writer:
        writer.write_frame(codec.encode_frame(counts, spec))
        path = writer.close()
    result = run_compress([BenchImage("one", counts, counts.astype(np.float32))], [autoencoder])
    ae = next(row for row in result["rows"] if row["method"].startswith(autoencoder + " (.emz"))
    assert ae["bytes_per_pixel"] * counts.size == path.stat().st_size
