"""medbundle.data.datalists: list_inputs, and load_datalists on the real data sets (realdata)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from helpers.data import CLASSES, gray, save_mat, save_png, stack

from medbundle.data.datalists import list_inputs, load_datalists
from medbundle.data.errors import DataError
from medbundle.transforms import LoadImage2D


HEAD_CT = SHARED_DATA / "head_ct"


def test_list_inputs(tmp_path):
    import pydicom.data

    folder = tmp_path / "in"
    save_png(folder / "a.png", gray())
    save_png(folder / "sub" / "b.jpg", gray(1))
    save_png(folder / "__MACOSX" / "c.png", gray(2))
    (folder / ".DS_Store").write_bytes(b"x")
    dcm = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    shutil.copy(dcm, folder / "IM0001")  # DICOM without extension
    nibabel.save(nibabel.Nifti1Image(np.zeros((5, 6), np.float32), np.eye(4)), folder / "v.nii.gz")
    assert [i["id"] for i in list_inputs(folder)] == ["IM0001", "a.png", "sub/b.jpg", "v.nii.gz"]
    assert list_inputs(folder / "a.png") == [{"image": str(folder / "a.png"), "id": "a.png"}]
    assert list_inputs(dcm)[0]["id"] == "CT_small.dcm"
    images, _ = stack(n=3)
    mat = save_mat(tmp_path / "Test.mat", "v73", data=images)
    assert [i["id"] for i in list_inputs(mat)] == ["Test.mat#0", "Test.mat#1", "Test.mat#2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images found"):
        list_inputs(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="x.txt: not a supported image file"):
        list_inputs(tmp_path / "x.txt")


@pytest.mark.realdata
@pytest.mark.skipif(not HEAD_CT.is_dir(), reason=f"real data absent: {HEAD_CT}")
def test_real_head_ct(tmp_path):
    splits = load_datalists(HEAD_CT, ["NORMAL", "HEMORRHAGE"], output_dir=tmp_path)
    assert sum(len(v) for v in splits.values()) == 140
    assert (tmp_path / "split.json").exists()
    for part in splits.values():
        assert {item["label"] for item in part} == {0, 1}


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "alzheimer_mri" / "train").is_dir(),
                    reason="real Alzheimer MRI data not present at ../shared/data/alzheimer_mri")
def test_real_kaggle_alzheimer_folders(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    lists = load_datalists(SHARED_DATA / "alzheimer_mri" / "train", CLASSES, output_dir=tmp_path, check=False,
                           group_pattern="sub-[^_/]+")
    counts = np.bincount([it["label"] for s in lists.values() for it in s], minlength=4)
    assert counts.tolist() == [2560, 1792, 717, 52]  # Non, VeryMild, Mild, Moderate
    assert "stratified by class (no group key)" in caplog.text  # Kaggle file names carry no subject
    img = LoadImage2D()(lists["test"][0]["image"])
    assert img.shape == (1, 208, 176) and img.dtype == torch.float32
