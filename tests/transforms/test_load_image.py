"""medbundle.transforms.load and .grayscale: ToGrayscale(d) and LoadImage2D(d) on PNG, JPEG, DICOM, NIfTI and .mat
slices."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import scipy.io
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from medbundle.data import DataError
from medbundle.transforms import LoadImage2D, LoadImage2Dd, ToGrayscale, ToGrayscaled


def test_to_grayscale_one_channel_unchanged():
    img = torch.rand(1, 5, 7)
    assert torch.equal(ToGrayscale()(img), img)


def test_to_grayscale_rgb_bt601():
    red = torch.zeros(3, 4, 5)
    red[0] = 200.0
    torch.testing.assert_close(ToGrayscale()(red), torch.full((1, 4, 5), 0.299 * 200))
    green = torch.zeros(3, 4, 5)
    green[1] = 100.0
    torch.testing.assert_close(ToGrayscale()(green), torch.full((1, 4, 5), 0.587 * 100))
    blue = torch.zeros(3, 4, 5)
    blue[2] = 100.0
    torch.testing.assert_close(ToGrayscale()(blue), torch.full((1, 4, 5), 0.114 * 100))
    white = torch.full((3, 4, 5), 255.0)
    torch.testing.assert_close(ToGrayscale()(white), torch.full((1, 4, 5), 255.0))


def test_to_grayscale_rgba_ignores_alpha_and_grey_alpha():
    rgb = torch.rand(3, 6, 6)
    a1 = torch.cat([rgb, torch.zeros(1, 6, 6)])
    a2 = torch.cat([rgb, torch.full((1, 6, 6), 255.0)])
    torch.testing.assert_close(ToGrayscale()(a1), ToGrayscale()(rgb))
    torch.testing.assert_close(ToGrayscale()(a2), ToGrayscale()(rgb))
    la = torch.stack([torch.rand(6, 6), torch.full((6, 6), 9.0)])
    assert torch.equal(ToGrayscale()(la), la[:1])


def test_to_grayscale_trailing_singleton():
    img = torch.rand(3, 4, 5, 1)
    out = ToGrayscale()(img)
    assert out.shape == (1, 4, 5)
    torch.testing.assert_close(out, ToGrayscale()(img[..., 0]))
    assert ToGrayscale()(torch.rand(1, 4, 5, 1, 1)).shape == (1, 4, 5)


def test_to_grayscale_volume_raises():
    with pytest.raises(DataError, match="vol.nii"):
        ToGrayscale()(torch.rand(1, 4, 5, 6), filename="vol.nii")
    with pytest.raises(DataError):
        ToGrayscale()(torch.rand(4, 5))


def test_to_grayscaled():
    d = ToGrayscaled(["image"])({"image": torch.rand(3, 4, 4), "label": 1})
    assert d["image"].shape == (1, 4, 4) and d["label"] == 1


def _marked(rows: int = 20, cols: int = 30, dtype=np.uint8, bright=255) -> np.ndarray:
    """A non-square image with a bright top-left pixel and a mid-grey marker at (5, 20)."""
    arr = np.zeros((rows, cols), dtype)
    arr[0, 0] = bright
    arr[5, 20] = 100
    return arr


def _check_marked(img: torch.Tensor, bright: float = 255.0) -> None:
    assert isinstance(img, torch.Tensor)
    assert img.dtype == torch.float32
    assert tuple(img.shape) == (1, 20, 30)
    assert float(img[0, 0, 0]) == pytest.approx(bright)
    assert float(img[0, 5, 20]) == pytest.approx(100.0)
    assert float(img[0, 20 - 1, 30 - 1]) == 0.0
    assert float(img.sum()) == pytest.approx(bright + 100.0)


def test_load_png_gray(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(_marked()).save(p)
    _check_marked(LoadImage2D()(str(p)))


def test_load_png_rgb_and_rgba(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[0, 0] = (200, 0, 0)  # pure red
    rgb[5, 20] = (100, 100, 100)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = LoadImage2D()(str(tmp_path / "rgb.png"))
    assert img.shape == (1, 20, 30) and img.dtype == torch.float32
    assert float(img[0, 0, 0]) == pytest.approx(0.299 * 200, abs=1e-3)
    assert float(img[0, 5, 20]) == pytest.approx(100.0, abs=1e-3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = np.random.default_rng(0).integers(1, 255, (20, 30))
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    img2 = LoadImage2D()(str(tmp_path / "rgba.png"))
    assert img2.shape == (1, 20, 30)
    torch.testing.assert_close(img2, img)


def test_load_png_16bit(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(_marked(dtype=np.uint16, bright=40000)).save(p)
    _check_marked(LoadImage2D()(str(p)), bright=40000.0)


def test_load_jpeg(tmp_path):
    arr = np.zeros((20, 30), np.uint8)
    arr[:8, :8] = 255
    p = tmp_path / "j.jpg"
    Image.fromarray(arr).save(p, quality=95)
    img = LoadImage2D()(str(p))
    assert img.shape == (1, 20, 30) and img.dtype == torch.float32
    assert float(img[0, 0, 0]) > 200 and float(img[0, -1, -1]) < 30


def test_load_dicom():
    path = get_testdata_file("CT_small.dcm")
    img = LoadImage2D()(path)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert img.shape == (1, ds.Rows, ds.Columns) and img.dtype == torch.float32
    assert not np.allclose(expected, expected.T)  # so the next line checks the orientation
    np.testing.assert_allclose(np.asarray(img[0]), expected)


def test_load_dicom_without_extension(tmp_path):
    target = tmp_path / "IM0001"
    target.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    img = LoadImage2D()(str(target))
    assert img.shape == (1, 128, 128)


@pytest.mark.parametrize("shape", ["2d", "2d+1"])
def test_load_nifti(tmp_path, shape):
    arr = _marked().astype(np.float32)
    if shape == "2d+1":
        arr = arr[..., None]
    p = tmp_path / "n.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(p))
    _check_marked(LoadImage2D()(str(p)))


def _write_mat(path: Path, images: np.ndarray, labels) -> Path:
    scipy.io.savemat(path, {"data": images, "label": np.asarray(labels, dtype=np.float64)})
    return path


def test_load_mat_slice_matches_png(tmp_path):
    data = np.zeros((3, 20, 30), np.uint8)
    data[1] = _marked()
    data[0, 10, 10] = 7
    mat = _write_mat(tmp_path / "file.mat", data, [0.0, 1.0, 2.0])
    img = LoadImage2D()(f"{mat}#1")
    _check_marked(img)
    Image.fromarray(data[1]).save(tmp_path / "same.png")
    png = LoadImage2D()(str(tmp_path / "same.png"))
    torch.testing.assert_close(torch.as_tensor(img), torch.as_tensor(png))
    assert float(LoadImage2D()(f"{mat}#0")[0, 10, 10]) == 7.0


def test_load_mat_slice_errors(tmp_path):
    data = np.zeros((3, 20, 30))
    data[2, 3, 3] = np.nan
    mat = _write_mat(tmp_path / "nan.mat", data, [0, 1, 2])
    with pytest.raises(DataError, match="nan.mat"):
        LoadImage2D()(f"{mat}#2")
    good = _write_mat(tmp_path / "good.mat", np.zeros((3, 20, 30)), [0, 1, 2])
    with pytest.raises(DataError, match="good.mat"):
        LoadImage2D()(f"{good}#5")


def test_load_unreadable_file_is_data_error(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        LoadImage2D()(str(p))


def test_load_image2dd(tmp_path):
    Image.fromarray(_marked()).save(tmp_path / "a.png")
    out = LoadImage2Dd(["image", "mask"], allow_missing_keys=True)({"image": str(tmp_path / "a.png"), "label": 2})
    _check_marked(out["image"])
    assert out["label"] == 2 and "mask" not in out


def test_to_grayscale_integer_rgb():
    from medbundle.transforms import ToGrayscale

    img = torch.zeros(3, 2, 2, dtype=torch.uint8)
    img[0] = 200
    assert torch.allclose(ToGrayscale()(img), torch.full((1, 2, 2), 0.299 * 200))
