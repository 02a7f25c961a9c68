"""TIFF in and out: ImageJ calibration, labels, hyperstacks, no silent overwrite."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.tiff import provenance_from_info, read_tiff, write_tiff

from conftest import SHARED_DATA


def test_round_trip_keeps_calibration_labels_and_info(calibrated_stack, tmp_path):
    pixels, meta = read_tiff(calibrated_stack)
    out = write_tiff(tmp_path / "out.tif", iter(pixels), meta, provenance={"model": "m-1"})
    again, meta2 = read_tiff(out)
    np.testing.assert_array_equal(again, pixels.astype(np.float32))
    assert (meta2.pixel_size, meta2.unit, meta2.frame_interval) == (pytest.approx(0.125), "nm", pytest.approx(0.5))
    assert meta2.slice_labels == [f"frame-{i}" for i in range(6)]
    assert provenance_from_info(meta2.info) == {"model": "m-1"}


def test_hyperstack_shape_restored(tmp_path):
    data = np.arange(2 * 3 * 8 * 9, dtype=np.uint16).reshape(2, 3, 8, 9)
    source = tmp_path / "hyper.tif"
    tifffile.imwrite(source, data, imagej=True, metadata={"axes": "TZYX"})
    pixels, meta = read_tiff(source)
    out = write_tiff(tmp_path / "o.tif", pixels.reshape(-1, 8, 9), meta)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].shape == (2, 3, 8, 9)
        assert tif.series[0].axes == "TZYX"


def test_existing_file_is_never_overwritten_without_asking(tmp_path):
    target = tmp_path / "keep.tif"
    target.write_bytes(b"precious")
    with pytest.raises(UserError, match="--overwrite"):
        write_tiff(target, [np.zeros((4, 4))], ImageMetadata())
    assert target.read_bytes() == b"precious"


def test_interrupted_write_leaves_nothing_behind(tmp_path):
    def frames():
        yield np.zeros((4, 4))
        raise InvalidInput("stopped")

    with pytest.raises(InvalidInput):
        write_tiff(tmp_path / "cut.tif", frames(), ImageMetadata(shape=(2, 4, 4), axes="TYX"))
    assert list(tmp_path.iterdir()) == []


def test_rgb_refused(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(InvalidInput, match="RGB"):
        read_tiff(path)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared/data is beside the checkout only")
def test_real_micrographs_pixel_size():
    _, haadf = read_tiff(SHARED_DATA / "serialem_haadf_tilt0_2frames.tif")
    assert (haadf.pixel_size, haadf.unit, haadf.shape) == (pytest.approx(0.788), "nm", (2, 1024, 1024))
    _, srtio3 = read_tiff(SHARED_DATA / "Tecnai_Osiris_SrTiO3.tif")
    assert srtio3.unit == "nm" and srtio3.pixel_size == pytest.approx(0.0135172, rel=1e-4)
