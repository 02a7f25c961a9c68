"""bioimage.io packages out and in (issue 21, item 5), run by the real bioimageio.core offline.

Representative shipped models: a min-mean linear kernel (seed 002), a counts MLP, the SBD
U-Net (pooling, counts; seed 003) and the global atrous Xception (range01; seed 001). The
network is closed for every test (socket connections other than loopback fail), so a
test that passes shows the packages need none.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

pytest.importorskip("bioimageio.core", reason="needs the [bioimageio] extra")

from ruyaml import YAML  # noqa: E402  (installed with bioimageio.spec)

from emdenoise.bioimageio import check_package, export_package, import_package  # noqa: E402
from emdenoise.bioimageio._export import sample_frame  # noqa: E402
from emdenoise.cli import main  # noqa: E402
from emdenoise.engine import Engine, ModelRepository, bundled_models_dir  # noqa: E402
from emdenoise.engine.cards import file_sha256  # noqa: E402
from emdenoise.errors import UserError  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network: any non-loopback connection fails; bioimageio's cache is private."""
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and "/" not in host:
            raise OSError(f"network disabled in tests (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "bioimageio-cache"))
    monkeypatch.setenv("EMDENOISE_MODELS", str(tmp_path / "user-models"))


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def _rdf(folder):
    yaml = YAML(typ="rt")
    return yaml, yaml.load((folder / "rdf.yaml").read_text(encoding="utf-8"))


def _save_rdf(folder, yaml, content):
    with open(folder / "rdf.yaml", "w", encoding="utf-8") as handle:
        yaml.dump(content, handle)


@pytest.mark.parametrize(
    "model_id",
    ["ede-kernel-tem-5", "ede-mlp-hrtem-5-h1", "sbd-unet32-hrtem", "ede-xception-w025-tem-low"],
)
def test_shipped_model_exports_to_a_package_bioimageio_core_passes(model_id, tmp_path, engine):
    rdf = export_package(model_id, tmp_path / model_id, engine=engine)
    folder = rdf.parent
    assert {p.name for p in folder.iterdir()} >= {"rdf.yaml", "model.onnx", "test_input.npy", "test_output.npy",
                                                  "cover.png", "README.md"}
    _, content = _rdf(folder)
    assert content["format_version"].startswith("0.5")
    assert content["weights"]["onnx"]["source"] == "model.onnx"
    assert content["license"] == "MIT" and content["authors"]
    assert any("Ede" in c["text"] or "Mohan" in c["text"] for c in content["cite"])
    assert content["config"]["emdenoise"]["card"]["id"] == model_id

    # The test output is the engine's, in the package's output units.
    raw = np.load(folder / "test_input.npy")[0, 0]
    expected = np.load(folder / "test_output.npy")[0, 0]
    kind = engine.card(model_id).normalization["kind"]
    denoised = engine.denoise(raw, model_id, **({"gain": 1.0, "offset": 0.0} if kind == "counts" else {}))
    if kind in ("range01", "min-mean"):
        denoised = (denoised - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(expected, denoised, rtol=1e-5, atol=1e-6)

    passed, failed = check_package(folder)
    assert passed, failed


def test_bioimageio_core_fails_a_package_whose_test_output_is_not_the_models(tmp_path, engine):
    folder = export_package("ede-kernel-hrtem-3", tmp_path / "pkg", engine=engine).parent
    output = np.load(folder / "test_output.npy")
    output[..., 100:140, 100:140] *= 1.05
    np.save(folder / "test_output.npy", output)
    yaml, content = _rdf(folder)
    content["outputs"][0]["test_tensor"]["sha256"] = file_sha256(folder / "test_output.npy")
    _save_rdf(folder, yaml, content)
    passed, failed = check_package(folder)
    assert not passed
    assert any("Reproduce test outputs" in line for line in failed), failed


def test_package_imports_back_and_gives_the_same_pixels(tmp_path, engine, capsys):
    zip_path = tmp_path / "smallunet.zip"
    export_package("sbd-smallunet-hrtem", tmp_path / "pkg", zip_path=zip_path, engine=engine)
    folder = import_package(zip_path)
    assert folder.parent == tmp_path / "user-models" and folder.name == "bioimageio-sbd-smallunet-hrtem"
    assert (folder / "rdf.yaml").is_file()

    assert main(["models"]) == 0
    assert "bioimageio-sbd-smallunet-hrtem" in capsys.readouterr().out

    user_engine = Engine(device="cpu")  # bundled + $EMDENOISE_MODELS
    frame = sample_frame(user_engine.card("sbd-smallunet-hrtem"))
    frame = np.pad(frame, [(0, 44), (0, 300)], mode="reflect")  # not a single square tile
    original = user_engine.denoise(frame, "sbd-smallunet-hrtem", gain=1.0, offset=0.0)
    imported = user_engine.denoise(frame, folder.name, gain=1.0, offset=0.0)
    np.testing.assert_array_equal(imported, original)

    # And through the command line, as a user would run it.
    import tifffile

    tiff = tmp_path / "frame.tif"
    tifffile.imwrite(tiff, frame)
    assert main(["denoise", str(tiff), "-o", str(tmp_path / "out"), "--model", folder.name,
                 "--gain", "1", "--offset", "0"]) == 0
    written = tifffile.imread(tmp_path / "out" / f"frame_denoised-{folder.name}.tif")
    np.testing.assert_array_equal(written, original)


def test_foreign_package_fixed_steps_are_built_into_the_graph(tmp_path, engine):
    """Without emdenoise's config the importer reads only bioimage.io fields: axes, halo, scale_linear."""
    folder = export_package("ede-mlp-hrtem-5-h1", tmp_path / "pkg", gain=2.0, offset=10.0, engine=engine).parent
    assert check_package(folder)[0]
    yaml, content = _rdf(folder)
    assert "scale_linear" in [step["id"] for step in content["inputs"][0]["preprocessing"]]
    del content["config"]["emdenoise"]
    _save_rdf(folder, yaml, content)

    installed = import_package(folder, model_id="bioimageio-mlp-foreign")
    card = ModelRepository([bundled_models_dir(), installed.parent]).get("bioimageio-mlp-foreign")
    assert card.normalization["kind"] == "none" and card.receptive_field == 5
    user_engine = Engine([bundled_models_dir(), installed.parent], device="cpu")
    frame = np.load(folder / "test_input.npy")[0, 0]
    original = engine.denoise(frame, "ede-mlp-hrtem-5-h1", gain=2.0, offset=10.0)
    np.testing.assert_allclose(user_engine.denoise(frame, "bioimageio-mlp-foreign"), original, rtol=1e-5, atol=1e-4)


def test_unsupported_steps_and_models_are_refused_in_one_sentence(tmp_path, engine):
    with pytest.raises(UserError, match="encode model"):
        export_package("ede-ae-d16", tmp_path / "ae", engine=engine)
    with pytest.raises(UserError, match="classical"):
        export_package("classical-gaussian3", tmp_path / "classical", engine=engine)

    folder = export_package("ede-kernel-tem-3", tmp_path / "pkg", engine=engine).parent
    with pytest.raises(UserError, match="already exists"):
        export_package("ede-kernel-tem-3", folder, engine=engine)
    yaml, content = _rdf(folder)
    del content["config"]["emdenoise"]
    content["inputs"][0]["preprocessing"] = [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}}]
    _save_rdf(folder, yaml, content)
    with pytest.raises(UserError, match="zero_mean_unit_variance") as refused:
        import_package(folder)
    assert str(refused.value).count(". ") == 0  # one sentence
    assert not (tmp_path / "user-models" / "bioimageio-emdenoise-ede-kernel-tem-3").exists()

    with pytest.raises(UserError, match="already taken"):
        import_package(export_package("ede-kernel-tem-7", tmp_path / "k7", engine=engine).parent,
                       model_id="ede-kernel-tem-7")
