"""medbundle.data.dicom through LoadImage2D: modality LUT applied, MONOCHROME1 inverted to the MONOCHROME2
convention (a real chest radiograph), colour as luminance, files without pixels or with several frames refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medbundle.data import DataError
from medbundle.data.files import _image_error
from medbundle.transforms import LoadImage2D


def _load(path) -> np.ndarray:
    return np.asarray(LoadImage2D()(str(path))[0])


def test_monochrome1_radiograph_is_inverted():
    """RG1_UNCR.dcm (pydicom-data) is a MONOCHROME1 chest radiograph: after loading, the lungs are darker than the
    spine, as in a MONOCHROME2 image."""
    path = get_testdata_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    img = _load(path)
    h, w = img.shape
    assert (h, w) == (ds.Rows, ds.Columns)
    lungs = [img[h // 4: 3 * h // 8, w // 4: 3 * w // 8].mean(), img[h // 4: 3 * h // 8, 5 * w // 8: 3 * w // 4].mean()]
    spine = img[h // 4: h // 2, 15 * w // 32: 17 * w // 32].mean()
    assert max(lungs) < spine - 2000, (lungs, spine)
    raw = ds.pixel_array.astype(np.float64)  # stored MONOCHROME1 values: the lungs are bright there
    assert raw[h // 4: 3 * h // 8, w // 4: 3 * w // 8].mean() > raw[h // 4: h // 2, 15 * w // 32: 17 * w // 32].mean()


def test_monochrome2_reencoding_gives_same_array(tmp_path):
    """The same pixels stored as MONOCHROME2 (inverted within the 15 stored bits) load to the same array."""
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    top = 2 ** int(ds.BitsStored) - 1
    ds.PixelData = (top - ds.pixel_array.astype(np.int64)).astype(np.uint16).tobytes()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(tmp_path / "m2.dcm")
    np.testing.assert_array_equal(_load(tmp_path / "m2.dcm"), _load(get_testdata_file("RG1_UNCR.dcm")))


def test_monochrome1_with_rescale_inverts_after_modality_lut(tmp_path):
    """With slope and intercept, MONOCHROME1 + MONOCHROME2 of the same stored pixels add up to the rescaled range."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # signed 16-bit, slope 1 intercept -1024
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.save_as(tmp_path / "m2.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    m1, m2 = _load(tmp_path / "m1.dcm"), _load(tmp_path / "m2.dcm")
    np.testing.assert_allclose(m2, 2 * ds.pixel_array.astype(np.float64) - 100)
    low, high = 2 * -(2**15) - 100, 2 * (2**15 - 1) - 100
    np.testing.assert_allclose(m1 + m2, low + high)


def test_dicom_without_pixel_data_refused(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "report.dcm")
    with pytest.raises(DataError, match=r"report.dcm: a DICOM file without pixel data .*Remove it") as info:
        LoadImage2D()(str(tmp_path / "report.dcm"))
    assert "\n" not in str(info.value)
    assert "without pixel data" in _image_error(str(tmp_path / "report.dcm"))


def test_multiframe_dicom_refused(tmp_path):
    path = get_testdata_file("emri_small.dcm")  # 10 frames
    with pytest.raises(DataError, match=r"emri_small.dcm: a multi-frame DICOM \(10 frames\).*own file"):
        LoadImage2D()(path)
    assert "10 frames" in _image_error(path)


def test_colour_dicom_as_luminance():
    path = get_testdata_file("SC_rgb.dcm")
    ds = pydicom.dcmread(path)
    rgb = ds.pixel_array.astype(np.float64)
    img = _load(path)
    np.testing.assert_allclose(img, rgb @ np.array([0.299, 0.587, 0.114]), rtol=1e-5, atol=1e-3)


def test_dicom_suffix_and_content(tmp_path):
    target = tmp_path / "IM0001"
    target.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    assert _load(target).shape == (128, 128)
    (tmp_path / "x.dicom").write_bytes(target.read_bytes())
    assert _load(tmp_path / "x.dicom").shape == (128, 128)
