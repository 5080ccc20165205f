"""medbundle.data.pillow through LoadImage2D: every PIL mode loads as intensities (grey levels, never palette
indices), 16-bit keeps its range, TIFF is read by PIL (8/16-bit, both byte orders), several frames are refused."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from medbundle.data import DataError
from medbundle.data.files import _image_error
from medbundle.transforms import LoadImage2D


def _load(path) -> np.ndarray:
    img = LoadImage2D()(str(path))
    assert img.shape[0] == 1 and img.dtype == torch.float32
    return np.asarray(img[0])


def test_palette_png_gives_grey_levels_not_indices(tmp_path):
    """Index 0 = white, 1 = black, 2 = mid grey: the loaded values follow the grey levels, not the indices."""
    idx = np.ones((6, 8), np.uint8)
    idx[0, 0] = 0
    idx[2, 3] = 2
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 255, 255, 0, 0, 0, 128, 128, 128] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = _load(tmp_path / "p.png")
    assert out.shape == (6, 8)
    assert out[0, 0] == pytest.approx(255, abs=1e-3) and out[1, 1] == pytest.approx(0) and out[2, 3] == pytest.approx(
        128, abs=1e-3)
    assert _image_error(str(tmp_path / "p.png")) is None


def test_palette_with_transparency_and_colour_palette(tmp_path):
    idx = np.zeros((4, 4), np.uint8)
    idx[1, 1] = 1
    im = Image.fromarray(idx, mode="P")
    im.putpalette([200, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))  # pure red, pure blue
    im.info["transparency"] = 1
    im.save(tmp_path / "pt.png", transparency=1)
    assert Image.open(tmp_path / "pt.png").mode in ("P", "PA")
    out = _load(tmp_path / "pt.png")
    assert out[0, 0] == pytest.approx(0.299 * 200, abs=1e-3)  # luminance of the colour, not index 0
    assert out[1, 1] == pytest.approx(0.114 * 255, abs=1e-3)


def test_one_bit_png(tmp_path):
    im = Image.new("1", (5, 4), 0)
    im.putpixel((3, 1), 1)
    im.save(tmp_path / "b.png")
    out = _load(tmp_path / "b.png")
    assert out.shape == (4, 5) and out[1, 3] == 255 and out.sum() == 255


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # white
    im.paste((0, 0, 0, 255), (0, 0, 8, 16))  # left half black
    im.save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = _load(tmp_path / "c.jpg")
    assert out.shape == (16, 16)
    assert out[:, :6].mean() < 20 and out[:, 10:].mean() > 235


def test_grey_alpha_keeps_grey(tmp_path):
    arr = np.stack([np.full((4, 5), 77, np.uint8), np.full((4, 5), 3, np.uint8)], -1)
    Image.fromarray(arr, mode="LA").save(tmp_path / "la.png")
    assert np.all(_load(tmp_path / "la.png") == 77)


def test_16bit_png_keeps_range(tmp_path):
    arr = np.zeros((5, 7), np.uint16)
    arr[1, 2] = 65535
    arr[3, 4] = 1234
    Image.fromarray(arr).save(tmp_path / "g16.png")
    out = _load(tmp_path / "g16.png")
    assert out[1, 2] == 65535 and out[3, 4] == 1234


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, ">u2", np.float32])
def test_tiff_read_as_image(tmp_path, dtype):
    """Real TIFF files (written by tifffile, not PIL): 8-bit, 16-bit both byte orders, float; rows first."""
    arr = np.zeros((20, 30), dtype)
    arr[0, 0] = 200
    arr[5, 20] = 100
    if np.dtype(dtype).itemsize == 2:
        arr[7, 7] = 40000
    for suffix in (".tif", ".TIFF"):
        path = tmp_path / f"t{suffix}"
        tifffile.imwrite(path, arr)
        out = _load(path)
        np.testing.assert_array_equal(out, arr.astype(np.float32))
        assert _image_error(str(path)) is None


def test_rgb_tiff(tmp_path):
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[..., 0] = 200
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert _load(tmp_path / "rgb.tif")[0, 0] == pytest.approx(0.299 * 200, abs=1e-3)


def test_multipage_tiff_refused(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"stack.tif: holds 5 frames .*own file"):
        LoadImage2D()(str(path))
    assert "5 frames" in _image_error(str(path))
