"""EM formats and the read_image dispatcher, on real files.

Files come from three places:

* written here with mrcfile (MRC + SerialEM .mdoc) and RosettaSciIO (Berkeley EMD), the
  SerialEM stack from the real HAADF pair in ``../shared/data``;
* the real micrographs in ``../shared/data`` (TIFF);
* real DM3/DM4, TIA SER/EMI and Velox EMD files that PyPI packages ship: hyperspy 1.7.6
  (``hyperspy/tests/io``, GPL-3), etspy 1.3.0 (``etspy/tests/test_data``, NIST public
  domain) and temul-toolkit 0.1.9 (``temul/example_data``, GPL-3). They are looked up under
  ``$EMDENOISE_EM_EXAMPLES``, ``tests/data/em`` and the installed packages, keeping each
  package's own relative path; a test whose file is absent is skipped and says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
from mrcfile.dtypes import get_ext_header_dtype
from rsciio.emd import file_writer as write_emd

from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.em_formats import EM_EXTENSIONS, normalise_length_unit, read_em
from emdenoise.io.reader import (
    CorruptFile,
    InputNotFound,
    UnsupportedFormat,
    read_image,
    sniff_format,
    supported_extensions,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HAADF_PAIR = SHARED_DATA / "serialem_haadf_tilt0_2frames.tif"
OSIRIS = SHARED_DATA / "Tecnai_Osiris_SrTiO3.tif"

# The SerialEM autodoc that belongs to the HAADF pair (etspy 1.3.0,
# etspy/tests/test_data/SerialEM_Multiframe_Test/test_000.mdoc; NIST public-domain notice in
# ../shared/data/README.md).
SERIALEM_MDOC = """PixelSpacing = 7.88
Voltage = 300
Version = SerialEM Version 4.0.20 32-bit,  built Feb 17 2023  20:16:11
ImageFile = test0.mrc
ImageSize = 1024 1024
DataMode = 1

[T = SerialEM: NIST Titan D3094                              31-Mar-23  16:24:14    ]

[T =     Tilt axis angle = -90.0, binning = 2  spot = 7  camera = 0 bidir = -0.0]

[ZValue = 0]
MinMaxMean = 2310 10435 4070.21
TiltAngle = -0.000488
Magnification = 115000
ExposureDose = 0
PixelSpacing = 7.88
ExposureTime = 0.524
Binning = 2
CameraIndex = 0
DividedBy2 = 1
CountsPerElectron = 1.65
DateTime = 31-Mar-23  16:24:15
ChannelName = HAADF

[ZValue = 1]
MinMaxMean = 2316 9665 4068.35
TiltAngle = -0.000488
Magnification = 115000
ExposureDose = 0
PixelSpacing = 7.88
ExposureTime = 0.524
Binning = 2
CameraIndex = 0
DividedBy2 = 1
CountsPerElectron = 1.65
DateTime = 31-Mar-23  16:24:17
ChannelName = HAADF
"""


def example(relative: str) -> Path:
    """A real example file shipped by a PyPI package, or skip the test."""
    roots = []
    if os.environ.get("EMDENOISE_EM_EXAMPLES"):
        roots.append(Path(os.environ["EMDENOISE_EM_EXAMPLES"]))
    roots.append(REPO / "tests" / "data" / "em")
    for package in ("hyperspy", "etspy", "temul"):
        spec = importlib.util.find_spec(package)  # locates without importing
        if spec is not None and spec.submodule_search_locations:
            roots.append(Path(list(spec.submodule_search_locations)[0]).parent)
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    pytest.skip(f"example file {relative} is not installed (see the module docstring)")


def one_sentence(error: BaseException, path: Path) -> str:
    text = str(error)
    assert str(path) in text, text
    assert "\n" not in text and text.endswith("."), text
    assert "Traceback" not in text
    return text


@pytest.fixture(scope="module")
def haadf_pair() -> np.ndarray:
    if not HAADF_PAIR.is_file():
        pytest.skip(f"{HAADF_PAIR} is missing")
    return tifffile.imread(HAADF_PAIR)


# ----------------------------------------------------------------------------- MRC (mrcfile)


def test_serialem_mrc_with_mdoc_keeps_calibration_and_timing(tmp_path, haadf_pair):
    path = tmp_path / "test_000.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(haadf_pair)
        mrc.set_image_stack()
        mrc.voxel_size = 7.88
    (tmp_path / "test_000.mrc.mdoc").write_text(SERIALEM_MDOC)

    pixels, meta = read_image(path)

    np.testing.assert_array_equal(pixels, haadf_pair)
    assert pixels.dtype == np.int16
    assert meta.source_format == "mrc"
    assert meta.axes == "TYX" and meta.shape == (2, 1024, 1024)
    assert meta.unit == "A" and meta.pixel_size == pytest.approx(7.88)
    assert meta.exposure == pytest.approx(0.524)
    assert meta.frame_interval == pytest.approx(2.0)  # 16:24:15 -> 16:24:17
    # CountsPerElectron belongs to the camera, not to the HAADF channel of this STEM image
    assert meta.gain is None and meta.dose is None
    assert [f["_section"] for f in meta.extra["mdoc"]["frames"]] == ["ZValue = 0", "ZValue = 1"]
    assert meta.extra["mdoc"]["frames"][0]["ChannelName"] == "HAADF"
    json.dumps(meta.extra)


def test_mrc_camera_mdoc_gives_gain_and_dose(tmp_path):
    path = tmp_path / "movie.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(np.ones((3, 64, 64), dtype=np.uint16))
        mrc.set_image_stack()
    camera_doc = SERIALEM_MDOC.replace("ChannelName = HAADF\n", "").replace(
        "CountsPerElectron = 1.65", "CountsPerElectron = 32").replace(
        "ExposureDose = 0", "ExposureDose = 1.5").replace("PixelSpacing = 7.88", "PixelSpacing = 2")
    (tmp_path / "movie.mdoc").write_text(camera_doc)  # the other sidecar spelling

    _, meta = read_em(path)

    assert meta.gain == pytest.approx(16.0)  # 32 counts/e, stored divided by 2
    assert meta.dose == pytest.approx(1.5 * 2 * 2)  # e/A^2 times the pixel area
    assert meta.pixel_size == pytest.approx(2.0) and meta.unit == "A"


def test_mrc_fei_extended_header(tmp_path):
    dtype = get_ext_header_dtype(b"FEI1")
    table = np.zeros(3, dtype=dtype)
    table["Metadata size"] = dtype.itemsize
    table["Metadata version"] = 1
    table["Integration time"] = 0.25
    table["Pixel size X"] = table["Pixel size Y"] = 1.5e-10
    table["Dose"] = 2e20  # electrons per square metre
    path = tmp_path / "epu.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(np.zeros((3, 64, 64), dtype=np.float32))
        mrc.set_image_stack()
        mrc.set_extended_header(table)
        mrc.header.exttyp = b"FEI1"

    _, meta = read_image(path)

    assert meta.exposure == pytest.approx(0.25)
    assert meta.pixel_size == pytest.approx(0.15) and meta.unit == "nm"  # 1.5e-10 m, no header size
    assert meta.dose == pytest.approx(4.5)
    assert meta.extra["fei_extended_header"]["Integration time"] == pytest.approx(0.25)


def test_mrc_volume_and_uncalibrated_single_image(tmp_path):
    volume = tmp_path / "tomogram.mrc"
    with mrcfile.new(str(volume)) as mrc:
        mrc.set_data(np.zeros((4, 32, 32), dtype=np.int16))
        mrc.set_volume()
        mrc.voxel_size = 3.2
    single = tmp_path / "single.st"
    with mrcfile.new(str(single)) as mrc:
        mrc.set_data(np.arange(32 * 48, dtype=np.float32).reshape(32, 48))

    _, meta = read_image(volume)
    pixels, single_meta = read_image(single)

    assert meta.axes == "ZYX" and meta.pixel_size == pytest.approx(3.2)
    assert single_meta.axes == "YX" and pixels.shape == (32, 48)
    assert single_meta.unit == "pixel" and single_meta.pixel_size is None


def test_big_endian_mrc_comes_back_native(tmp_path):
    data = np.arange(3 * 20 * 30, dtype=">f4").reshape(3, 20, 30)
    path = tmp_path / "big_endian.mrcs"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(data)
        mrc.set_image_stack()
    assert path.read_bytes()[212:214] == b"\x11\x11"  # written big-endian
    pixels, meta = read_image(path)
    assert pixels.dtype == np.float32 and pixels.dtype.isnative
    np.testing.assert_array_equal(pixels, data)
    assert meta.axes == "TYX"


def test_damaged_mrc_header_is_refused_before_allocating(tmp_path):
    path = tmp_path / "header_only.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(np.zeros((64, 64), np.float32))
    raw = bytearray(path.read_bytes())
    raw[92:96] = (2**31 - 1).to_bytes(4, "little")  # nsymbt: a 2 GiB extended header
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFile) as caught:
        read_image(path)
    assert "truncated" in one_sentence(caught.value, path)


# ----------------------------------------------------------------------------- Berkeley EMD (rsciio)


def _signal(data, units="nm", frame_units="s"):
    axes = [{"name": "y", "size": data.shape[-2], "scale": 0.2, "offset": 0.0, "units": units,
             "navigate": False},
            {"name": "x", "size": data.shape[-1], "scale": 0.2, "offset": 0.0, "units": units,
             "navigate": False}]
    if data.ndim == 3:
        axes.insert(0, {"name": "time", "size": data.shape[0], "scale": 0.5, "offset": 0.0,
                        "units": frame_units, "navigate": True})
    return {"data": data, "axes": axes, "metadata": {"General": {"title": "HAADF"}, "Signal": {}},
            "original_metadata": {}}


def test_berkeley_emd_stack_written_by_rosettasciio(tmp_path):
    data = np.random.default_rng(1).poisson(5.0, size=(3, 40, 50)).astype(np.uint16)
    path = tmp_path / "series.emd"
    write_emd(str(path), _signal(data))

    pixels, meta = read_image(path)

    np.testing.assert_array_equal(pixels, data)
    assert meta.source_format == "emd-berkeley"
    assert meta.axes == "TYX" and meta.shape == (3, 40, 50)
    assert meta.pixel_size == pytest.approx(0.2) and meta.unit == "nm"
    assert meta.frame_interval == pytest.approx(0.5)
    assert meta.extra["signal"] == "HAADF"
    json.dumps(meta.extra)


@pytest.mark.parametrize("units, size, unit", [("µm", 0.2, "um"), ("pm", 0.002, "A"), ("m", 2e5, "um")])
def test_berkeley_emd_units_are_spelled_as_imagej_does(tmp_path, units, size, unit):
    path = tmp_path / "image.emd"
    write_emd(str(path), _signal(np.zeros((16, 16), np.float32), units=units))
    _, meta = read_image(path)
    assert meta.unit == unit and meta.pixel_size == pytest.approx(size)


def test_complex_emd_is_refused_with_a_fix(tmp_path):
    path = tmp_path / "fft.emd"
    write_emd(str(path), _signal(np.ones((16, 16), np.complex64)))
    with pytest.raises(InvalidInput) as caught:
        read_image(path)
    assert "complex" in one_sentence(caught.value, path)


def test_spectrum_emd_is_refused(tmp_path):
    path = tmp_path / "spectrum.emd"
    write_emd(str(path), {"data": np.arange(100, dtype=np.float32),
                          "axes": [{"name": "E", "size": 100, "scale": 1.0, "offset": 0.0,
                                    "units": "eV", "navigate": False}],
                          "metadata": {"General": {"title": "EELS"}, "Signal": {}},
                          "original_metadata": {}})
    with pytest.raises(InvalidInput) as caught:
        read_image(path)
    assert "spectrum" in one_sentence(caught.value, path)


def test_complex_mrc_is_refused(tmp_path):
    path = tmp_path / "wave.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(np.zeros((16, 16), np.complex64))
    with pytest.raises(InvalidInput) as caught:
        read_image(path)
    assert "complex" in one_sentence(caught.value, path)


@pytest.mark.parametrize("scale, unit, expected", [
    (0.5, "nm", (0.5, "nm")), (0.5, "µm", (0.5, "um")), (0.5, "μm", (0.5, "um")),
    (0.5, "micron", (0.5, "um")), (7.88, "Å", (7.88, "A")), (2.5, "1 / nm", (2.5, "1/nm")),
    (3e-9, "m", (3.0, "nm")), (8.0, "pm", (0.08, "A")), (1.0, "", (None, "pixel")),
    (2.0, "deg", (None, "pixel")), (0.0, "nm", (None, "pixel")), (1.0, None, (None, "pixel")),
])
def test_normalise_length_unit(scale, unit, expected):
    size, spelled = normalise_length_unit(scale, unit)
    assert spelled == expected[1]
    assert size == (pytest.approx(expected[0]) if expected[0] is not None else None)


# ----------------------------------------------------------------------------- real DM, TIA, Velox


@pytest.mark.parametrize("relative, axes, shape, pixel_size, unit, extra", [
    ("etspy/tests/test_data/HAADF.dm3", "TYX", (91, 64, 64), 0.017994916, "um",
     {"dwell_time": 32.5e-6}),
    ("etspy/tests/test_data/DM_Series_Test/BF_001.dm3", "YX", (128, 128), 0.0191087, "um", {}),
    ("temul/example_data/experimental/example_Se_implanted_MoS2.dm3", "YX", (1024, 1024),
     0.0126953125, "nm", {}),
    ("hyperspy/tests/io/dm3_2D_data/test_STEM_image.dm3", "YX", (68, 68), 0.248538, "nm",
     {"dwell_time": 3.5e-6}),
    ("hyperspy/tests/io/tiff_files/test_dm_image_um_unit.dm3", "YX", (68, 68), 0.1686747, "um", {}),
    ("hyperspy/tests/io/dm4_2D_data/test-10.dm4", "YX", (2, 2), None, "pixel", {}),
    ("hyperspy/tests/io/dm4_3D_data/test-2.dm4", "TYX", (2, 2, 2), None, "pixel", {}),
])
def test_real_digitalmicrograph_files(relative, axes, shape, pixel_size, unit, extra):
    path = example(relative)
    pixels, meta = read_image(path)
    assert meta.source_format == path.suffix[1:]
    assert pixels.shape == shape and meta.shape == shape and meta.axes == axes
    assert meta.unit == unit
    assert meta.pixel_size == (pytest.approx(pixel_size, rel=1e-5) if pixel_size else None)
    for key, value in extra.items():
        assert meta.extra[key] == pytest.approx(value)
    assert meta.extra["original_metadata"]
    json.dumps(meta.extra)


def test_real_dm_tilt_series_keeps_angles():
    _, meta = read_image(example("etspy/tests/test_data/HAADF.dm3"))
    assert meta.slice_labels[:2] == ["tilt -90 deg", "tilt -88 deg"]
    assert meta.extra["axis_calibrations"][0]["units"] == "deg"


def test_real_dm_exposure():
    _, meta = read_image(example("hyperspy/tests/io/tiff_files/test_dm_image_um_unit.dm3"))
    assert meta.exposure == pytest.approx(0.5)


@pytest.mark.parametrize("relative, problem", [
    ("hyperspy/tests/io/dm3_2D_data/test-23.dm3", "RGB"),
    ("hyperspy/tests/io/dm3_2D_data/test-8.dm3", "RGB"),
    ("hyperspy/tests/io/dm4_2D_data/test-13.dm4", "complex"),
    ("hyperspy/tests/io/dm3_3D_data/test-3.dm3", "complex"),
    ("hyperspy/tests/io/emd_files/fei_example_complex_fft.emd", "complex"),
    ("hyperspy/tests/io/FEI_old/X - Au NP EELS_2.ser", "spectrum"),
    ("hyperspy/tests/io/FEI_old/16x16-spectrum_image-5x5x1024.emi", "spectrum"),
])
def test_real_files_that_are_not_micrographs_are_refused(relative, problem):
    path = example(relative)
    with pytest.raises(InvalidInput) as caught:
        read_image(path)
    assert problem in one_sentence(caught.value, path)


@pytest.mark.parametrize("relative, axes, shape, pixel_size, unit, exposure, dwell", [
    ("hyperspy/tests/io/FEI_new/128x128_TEM_acquire-sum1_1.ser", "YX", (128, 128), 21.4793175, "nm",
     0.05, None),
    ("hyperspy/tests/io/FEI_new/128x128_TEM_acquire-sum1.emi", "YX", (128, 128), 21.4793175, "nm",
     0.05, None),
    ("hyperspy/tests/io/FEI_old/64x64x5_TEM_preview.emi", "TYX", (5, 64, 64), 6.2818336, "nm",
     0.0625, None),
    ("hyperspy/tests/io/FEI_old/16x16_STEM_BF_DF_acquire_2.ser", "YX", (16, 16), 21.5100441, "nm",
     None, 4.8e-5),
])
def test_real_tia_files(relative, axes, shape, pixel_size, unit, exposure, dwell):
    path = example(relative)
    pixels, meta = read_image(path)
    assert meta.source_format == path.suffix[1:]
    assert pixels.shape == shape and meta.axes == axes
    assert meta.unit == unit and meta.pixel_size == pytest.approx(pixel_size, rel=1e-6)
    assert meta.exposure == (pytest.approx(exposure) if exposure else None)
    assert meta.extra.get("dwell_time") == (pytest.approx(dwell) if dwell else None)


def test_tia_ser_picks_its_own_detector_from_the_emi():
    first = example("hyperspy/tests/io/FEI_old/16x16_STEM_BF_DF_acquire_1.ser")
    second = first.with_name("16x16_STEM_BF_DF_acquire_2.ser")
    pixels_1, meta_1 = read_image(first)
    pixels_2, meta_2 = read_image(second)
    assert meta_1.extra["signal"] != meta_2.extra["signal"]
    assert not np.array_equal(pixels_1, pixels_2)
    assert read_em(first.with_name("16x16_STEM_BF_DF_acquire.emi"), signal=1)[0].tolist() == pixels_2.tolist()


def test_real_velox_camera_stack():
    path = example("hyperspy/tests/io/emd_files/fei_example_tem_stack.emd")
    pixels, meta = read_image(path)
    assert meta.source_format == "emd-velox"
    assert pixels.shape == (2, 3, 3) and meta.axes == "TYX"
    assert meta.unit == "A" and meta.pixel_size == pytest.approx(0.0817288, rel=1e-5)  # 8.17 pm
    assert meta.exposure == pytest.approx(0.8) and meta.frame_interval == pytest.approx(0.8)
    assert meta.gain == pytest.approx(1 / 0.835766)  # CountsToElectrons of the BM-Ceta camera
    assert meta.extra["original_metadata"]["BinaryResult.Detector"] == "BM-Ceta"


def test_real_velox_stem_image():
    path = example("temul/example_data/experimental/example_Au_nanoparticle.emd")
    pixels, meta = read_image(path)
    assert meta.source_format == "emd-velox"
    assert pixels.shape == (2048, 2048) and pixels.dtype == np.uint16
    assert meta.unit == "nm" and meta.pixel_size == pytest.approx(0.0074984, rel=1e-4)
    assert meta.extra["dwell_time"] == pytest.approx(2.5e-6)
    assert meta.extra["signal"] == "HAADF"


# ----------------------------------------------------------------------------- read_image dispatch


def test_real_tiffs_from_shared_data(haadf_pair):
    pixels, meta = read_image(HAADF_PAIR)
    np.testing.assert_array_equal(pixels, haadf_pair)
    assert meta.source_format == "tiff" and meta.axes == "TYX"
    assert meta.unit == "nm" and meta.pixel_size == pytest.approx(0.788)
    if OSIRIS.is_file():
        pixels, meta = read_image(OSIRIS)
        assert pixels.shape == (512, 512) and meta.unit == "nm"
        assert meta.pixel_size == pytest.approx(0.0135172, rel=1e-4)


def test_content_wins_over_a_wrong_extension(tmp_path, haadf_pair):
    path = tmp_path / "really_a_tiff.dm4"
    tifffile.imwrite(path, haadf_pair[0])
    pixels, meta = read_image(path)
    assert meta.source_format == "tiff"
    np.testing.assert_array_equal(pixels, haadf_pair[0])


def test_sniff_format_recognises_written_files(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 4), np.uint8))
    write_emd(str(tmp_path / "a.emd"), _signal(np.zeros((4, 4), np.float32)))
    with mrcfile.new(str(tmp_path / "a.mrc")) as mrc:
        mrc.set_data(np.zeros((4, 4), np.int16))
    assert [sniff_format(tmp_path / n) for n in ("a.tif", "a.emd", "a.mrc")] == ["tiff", "emd", "mrc"]


def test_missing_file(tmp_path):
    path = tmp_path / "nothing_here.dm4"
    with pytest.raises(InputNotFound) as caught:
        read_image(path)
    assert "does not exist" in one_sentence(caught.value, path)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        read_image(tmp_path)
    assert "folder" in one_sentence(caught.value, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.dm3"
    path.touch()
    with pytest.raises(CorruptFile) as caught:
        read_image(path)
    assert "empty" in one_sentence(caught.value, path)


def test_unsupported_extension_lists_what_is_supported(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("not an image")
    with pytest.raises(UnsupportedFormat) as caught:
        read_image(path)
    text = one_sentence(caught.value, path)
    for extension in supported_extensions():
        assert extension in text
    assert set(EM_EXTENSIONS) <= set(supported_extensions())


@pytest.mark.parametrize("name", ["garbage.dm3", "garbage.dm4", "garbage.ser", "garbage.emi",
                                  "garbage.emd", "garbage.mrc", "garbage.tif"])
def test_corrupt_files_give_one_sentence(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFile) as caught:
        read_image(path)
    one_sentence(caught.value, path)


def test_truncated_files(tmp_path, haadf_pair):
    tiff = tmp_path / "cut.tif"
    tifffile.imwrite(tiff, haadf_pair)
    tiff.write_bytes(tiff.read_bytes()[:600_000])
    emd = tmp_path / "cut.emd"
    write_emd(str(emd), _signal(haadf_pair[:, :256, :256].astype(np.uint16)))
    emd.write_bytes(emd.read_bytes()[:50_000])
    mrc = tmp_path / "cut.mrc"
    with mrcfile.new(str(mrc)) as handle:
        handle.set_data(haadf_pair[0])
    mrc.write_bytes(mrc.read_bytes()[:100_000])
    for path in (tiff, emd, mrc):
        with pytest.raises(UserError) as caught:
            read_image(path)
        one_sentence(caught.value, path)


def test_hdf5_that_is_not_emd(tmp_path):
    path = tmp_path / "other.emd"
    with h5py.File(path, "w") as handle:
        handle["numbers"] = np.arange(10)
    with pytest.raises(CorruptFile) as caught:
        read_image(path)
    assert "EMD" in one_sentence(caught.value, path)
