"""medbundle.data.limits: the pixel limit, checked from the header before decoding (PNG, TIFF, DICOM, NIfTI), in
LoadImage2D(d) and in the datalist preflight check; configurable with ``max_pixels``."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from helpers.data import make_class_tree
from PIL import Image
from pydicom.data import get_testdata_file

from medbundle.data import DataError
from medbundle.data.datalists import load_datalists
from medbundle.data.limits import MAX_PIXELS, check_pixels, image_shape
from medbundle.transforms import LoadImage2D, LoadImage2Dd


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` 8-bit grey pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + _chunk(b"IEND", b""))
    return path


def test_default_limit_below_pil_bomb_threshold():
    assert MAX_PIXELS <= (Image.MAX_IMAGE_PIXELS or 2**62)


@pytest.mark.parametrize("side", [7000, 20000])  # 49 M: above medbundle's limit; 400 M: above PIL's own
def test_huge_png_refused_fast_from_header(tmp_path, side):
    path = header_only_png(tmp_path / "huge.png", side, side)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        LoadImage2D()(str(path))
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert message.startswith(str(path)) and f"{side * side:,} pixels" in message and "max_pixels" in message
    assert "\n" not in message
    if side == 7000:
        assert "7000 x 7000" in message and f"{MAX_PIXELS:,}" in message and "--max_pixels 49000000" in message


def test_limit_configurable(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((100, 80), np.uint8)).save(path)
    with pytest.raises(DataError, match=r"img.png: 100 x 80 = 8,000 pixels, more than the limit of 5,000"):
        LoadImage2D(max_pixels=5000)(str(path))
    with pytest.raises(DataError, match="limit of 5,000"):
        LoadImage2Dd("image", max_pixels=5000)({"image": str(path)})
    assert LoadImage2D(max_pixels=8000)(str(path)).shape == (1, 100, 80)
    assert LoadImage2D(max_pixels=None)(str(path)).shape == (1, 100, 80)


def test_dicom_and_nifti_sizes_from_header(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows, ds.Columns = 8000, 6000  # the header lies; the pixels are never decoded
    ds.save_as(tmp_path / "big.dcm")
    assert image_shape(tmp_path / "big.dcm") == (8000, 6000)
    with pytest.raises(DataError, match=r"big.dcm: 8000 x 6000 = 48,000,000 pixels"):
        LoadImage2D()(str(tmp_path / "big.dcm"))
    header = nibabel.Nifti1Header()
    header.set_data_shape((7000, 7000))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    (tmp_path / "big.nii").write_bytes(header.binaryblock + b"\x00" * 4)
    assert image_shape(tmp_path / "big.nii") == (7000, 7000)
    with pytest.raises(DataError, match=r"big.nii: 7000 x 7000"):
        check_pixels(tmp_path / "big.nii")
    check_pixels(tmp_path / "big.nii", max_pixels=None)


def test_preflight_check_reports_huge_images(tmp_path):
    make_class_tree(tmp_path, {"NORMAL": 6, "HEMORRHAGE": 6})
    huge = header_only_png(tmp_path / "NORMAL" / "huge.png", 7000, 7000)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    assert time.perf_counter() - start < 5
    assert f"{huge}: 7000 x 7000 = 49,000,000 pixels, more than the limit" in str(info.value)
    with pytest.raises(DataError, match="limit of 100 "):  # every image is over a limit of 100 pixels
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"], max_pixels=100)
