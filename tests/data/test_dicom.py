"""medbundle.data.dicom through LoadImage2D: modality LUT, then VOI LUT or window (float, not squeezed to 8 bits),
then MONOCHROME1 inverted to the MONOCHROME2 convention (a real chest radiograph), colour as luminance; files without
pixels (structured reports) or with several frames refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import ScaleIntensity
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


def test_radiograph_window_then_inversion():
    """RG1_UNCR.dcm has window centre 15000 / width 30000 over 15 stored bits: the loaded array is the DICOM linear
    window (PS3.3 C.11.2.1.2.1, written out here) of the stored values, inverted within the window's output range."""
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    assert (float(ds.WindowCenter), float(ds.WindowWidth), int(ds.BitsStored)) == (15000, 30000, 15)
    top = 2**15 - 1
    x = ds.pixel_array.astype(np.float64)
    windowed = np.clip(((x - 14999.5) / 29999 + 0.5) * top, 0, top)
    img = _load(get_testdata_file("RG1_UNCR.dcm"))
    np.testing.assert_allclose(img, top - windowed, rtol=0, atol=0.01)
    assert len(np.unique(img)) > 10_000  # float range kept, not squeezed to 8 bits


def _monochrome2_copy(path, out):
    """The pixels of the MONOCHROME1 file ``path`` stored as MONOCHROME2: values inverted within the stored bits, the
    window centre moved so that the linear window gives the inverted output (``c' = 2**bits - c``)."""
    ds = pydicom.dcmread(path)
    top = 2 ** int(ds.BitsStored) - 1
    ds.PixelData = (top - ds.pixel_array.astype(np.int64)).astype(np.uint16).tobytes()
    ds.PhotometricInterpretation = "MONOCHROME2"
    if "WindowCenter" in ds:
        ds.WindowCenter = top + 1 - float(ds.WindowCenter)
    ds.save_as(out)
    return out


def test_monochrome2_reencoding_gives_same_array(tmp_path):
    """The same pixels stored as MONOCHROME2 (inverted within the 15 stored bits, window adjusted) load to the same
    array, and to the same array after scaling to [0, 1] (what the bundles train on)."""
    m1 = _load(get_testdata_file("RG1_UNCR.dcm"))
    m2 = _load(_monochrome2_copy(get_testdata_file("RG1_UNCR.dcm"), tmp_path / "m2.dcm"))
    np.testing.assert_allclose(m2, m1, rtol=0, atol=0.01)
    scaled = [ScaleIntensity()(torch.as_tensor(a)[None]).numpy() for a in (m1, m2)]
    np.testing.assert_allclose(scaled[0], scaled[1], rtol=0, atol=1e-6)
    ds = pydicom.dcmread(tmp_path / "m2.dcm")  # without a window: the stored-bits range, the same after scaling
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(tmp_path / "m2_nowindow.dcm")
    plain = ScaleIntensity()(torch.as_tensor(_load(tmp_path / "m2_nowindow.dcm"))[None]).numpy()
    assert np.corrcoef(plain.ravel(), scaled[0].ravel())[0, 1] > 0.999


def _ct(tmp_path, name, **tags):
    """CT_small.dcm (signed 16 bits, rescale 1 / -1024: Hounsfield units) with ``tags`` set, saved as ``name``."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(tmp_path / name)
    return ds, tmp_path / name


def test_window_applied_after_modality_lut_in_float(tmp_path):
    """A soft-tissue window (40 / 400 HU) clips outside [-160, 240] HU and keeps float steps inside (no 8 bits)."""
    ds, path = _ct(tmp_path, "w.dcm", WindowCenter=40, WindowWidth=400)
    hu = ds.pixel_array.astype(np.float64) - 1024
    low, high = -(2**15) - 1024, 2**15 - 1 - 1024  # the window's output range: the rescaled stored range
    img = _load(path)
    np.testing.assert_allclose(img, np.clip(((hu - 39.5) / 399 + 0.5) * (high - low) + low, low, high), atol=0.05)
    inside = (hu > -150) & (hu < 230)
    assert img[hu <= -161].max() == low and img[hu > 240].min() == high and inside.any()
    assert len(np.unique(img[inside])) > 256
    _, m1 = _ct(tmp_path, "w1.dcm", WindowCenter=40, WindowWidth=400, PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_allclose(_load(m1), (low + high) - img, atol=0.05)  # inverted within the window's output


def test_voi_lut_sequence_preferred_to_window(tmp_path):
    """A VOI LUT Sequence (here: 12-bit output, a step at 0 HU) wins over a window; MONOCHROME1 inverts in 0..4095."""
    lut = pydicom.Dataset()
    lut.LUTDescriptor = [4096, -2048, 12]  # entries, first mapped value, bits per entry
    lut.LUTData = list(np.where(np.arange(4096) - 2048 < 0, 100, 4000))
    lut["LUTData"].VR = "US"
    ds, path = _ct(tmp_path, "lut.dcm", VOILUTSequence=pydicom.Sequence([lut]), WindowCenter=40, WindowWidth=400)
    hu = ds.pixel_array.astype(np.float64) - 1024
    img = _load(path)
    np.testing.assert_array_equal(img, np.where(hu < 0, 100, 4000))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "lut1.dcm")
    np.testing.assert_array_equal(_load(tmp_path / "lut1.dcm"), 4095 - img)


def test_empty_or_half_window_is_no_window(tmp_path):
    """Window tags sent empty, or only a centre, leave the values as the modality LUT gives them (as without tags)."""
    plain = _load(_ct(tmp_path, "plain.dcm")[1])
    assert np.array_equal(_load(_ct(tmp_path, "empty.dcm", WindowCenter=None, WindowWidth=None)[1]), plain)
    assert np.array_equal(_load(_ct(tmp_path, "half.dcm", WindowCenter=40)[1]), plain)


def test_bad_window_is_one_line_error(tmp_path):
    _, path = _ct(tmp_path, "bad.dcm", WindowCenter=40, WindowWidth=0)
    with pytest.raises(DataError, match=r"bad.dcm: the DICOM VOI LUT or window .*width 0.*Fix or remove") as info:
        LoadImage2D()(str(path))
    assert "\n" not in str(info.value)


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


def test_structured_report_refused():
    path = get_testdata_file("test-SR.dcm")  # Comprehensive SR: text and codes, no pixels
    with pytest.raises(DataError, match=r"test-SR.dcm: a DICOM file without pixel data \(Comprehensive SR Storage\)"):
        LoadImage2D()(path)
    assert "without pixel data" in _image_error(path)


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


def test_palette_colour_dicom_as_luminance_of_its_colours():
    """An ultrasound stored as PALETTE COLOR: indices through the colour table, then luminance (never the indices)."""
    path = get_testdata_file("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    rgb = pydicom.pixels.apply_color_lut(ds.pixel_array, ds).astype(np.float64)
    np.testing.assert_allclose(_load(path), rgb @ np.array([0.299, 0.587, 0.114]), rtol=1e-5, atol=0.1)
    assert _load(path).max() > 255  # 16-bit table entries, not 8-bit indices


def test_dicom_suffix_and_content(tmp_path):
    target = tmp_path / "IM0001"
    target.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    assert _load(target).shape == (128, 128)
    (tmp_path / "x.dicom").write_bytes(target.read_bytes())
    assert _load(tmp_path / "x.dicom").shape == (128, 128)
