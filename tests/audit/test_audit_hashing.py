"""medbundle.audit.hashing: every kind of file read once into digests, hashes, header facts and statistics."""

from __future__ import annotations

import numpy as np
import pytest
from audit_images import picture, resized, save, trimmed
from PIL import Image

from medbundle.audit import hash_image, hash_images
from medbundle.audit.duplicates import hamming


def _distance(a, b) -> int:
    return int(hamming(a[None], b[None])[0, 0])


def test_modes_and_depths_are_read_as_grey(tmp_path):
    grey = picture(0)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray((grey.astype(np.uint16) * 257)).save(tmp_path / "deep.png")  # 16-bit, same picture
    Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 200)]), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(grey).save(tmp_path / "grey.tif")
    rows = {p: hash_image(tmp_path / p) for p in ("grey.png", "deep.png", "rgba.png", "palette.png", "grey.tif")}
    assert {p: (r["info"]["mode"], r["info"]["bit_depth"], r["info"]["format"]) for p, r in rows.items()} == {
        "grey.png": ("L", 8, "PNG"), "deep.png": ("I;16", 16, "PNG"), "rgba.png": ("RGBA", 8, "PNG"),
        "palette.png": ("P", 8, "PNG"), "grey.tif": ("L", 8, "TIFF")}
    for name, row in rows.items():
        assert row["info"]["error"] == ""
        assert (row["info"]["width"], row["info"]["height"]) == (260, 300)
        assert _distance(row["phash"], rows["grey.png"]["phash"]) <= 4, name  # the same picture in every form
        assert row["info"]["mean"] == pytest.approx(grey.mean() / 255, abs=0.02), name  # 0-1 whatever the depth
    assert rows["grey.tif"]["pixel_sha256"] == rows["grey.png"]["pixel_sha256"]  # same pixels, other bytes
    assert rows["grey.tif"]["file_sha256"] != rows["grey.png"]["file_sha256"]
    assert rows["deep.png"]["pixel_sha256"] != rows["grey.png"]["pixel_sha256"]  # other values


def test_resized_and_reencoded_copies_stay_close_unrelated_pictures_do_not(tmp_path):
    original = picture(1)
    save(tmp_path / "a.png", original)
    save(tmp_path / "b.jpg", resized(original, 224, 224), quality=75)  # squeezed square, JPEG
    save(tmp_path / "c.png", picture(2))
    table = hash_images([tmp_path / n for n in ("a.png", "b.jpg", "c.png")], progress=False)
    assert _distance(table.phash[0], table.phash[1]) <= 12
    assert _distance(table.phash[0], table.phash[2]) >= 80
    assert table.thumbs.shape == (3, 64, 64) and table.thumbs.dtype == np.uint8
    assert table.thumbs[0].min() == 0 and table.thumbs[0].max() == 255  # stretched


def test_a_trimmed_copy_moves_the_fine_hash_more_than_the_coarse_ones(tmp_path):
    original = picture(3)
    save(tmp_path / "a.png", original)
    save(tmp_path / "b.png", trimmed(original, 0.05, 0.05, 0.05, 0.05))
    table = hash_images([tmp_path / "a.png", tmp_path / "b.png"], progress=False)
    fine = _distance(table.phash[0], table.phash[1]) / 256
    coarse = _distance(table.coarse[0], table.coarse[1]) / 128
    assert coarse < fine


def test_large_jpegs_are_decoded_reduced(tmp_path):
    save(tmp_path / "big.jpg", resized(picture(4), 1400, 1100))
    row = hash_image(tmp_path / "big.jpg")
    assert row["info"]["decoded_scale"] == 4  # 1100 / 4 = 275 >= 256
    assert (row["info"]["width"], row["info"]["height"]) == (1400, 1100)  # the file's size, from its header


def test_a_damaged_file_is_reported_not_raised(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    save(tmp_path / "good.png", picture(5))
    table = hash_images([tmp_path / "bad.png", tmp_path / "good.png"], progress=False)
    assert table.ok.tolist() == [False, True]
    assert table.info[0]["error"] and "\n" not in table.info[0]["error"]
    assert table.file_sha256[0]  # the bytes are still hashed (two identical damaged files are exact duplicates)
    assert not table.phash[0].any()


def test_dicom_files_are_read_through_medbundle_dicom(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    row = hash_image(path)
    ds = pydicom.dcmread(path)
    assert row["info"]["error"] == ""
    assert (row["info"]["format"], row["info"]["width"], row["info"]["height"]) == ("DICOM", ds.Columns, ds.Rows)
    assert row["phash"].shape == (4,) and row["phash"].any()
