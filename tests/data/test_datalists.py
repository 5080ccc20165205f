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


def test_one_class_training_data_refused(tmp_path):
    """One class present (class folders, or a datalist with one label): refused, naming the classes and folder."""
    from helpers.data import make_class_tree

    make_class_tree(tmp_path / "folders", {"NORMAL": 8})
    with pytest.raises(DataError) as info:
        load_datalists(tmp_path / "folders", ["NORMAL", "HEMORRHAGE"])
    message = str(info.value)
    assert message.startswith(str(tmp_path / "folders")) and "\n" not in message
    assert "1 class(es) ['NORMAL']" in message and "at least 2" in message and "['HEMORRHAGE']" in message
    make_class_tree(tmp_path / "csv" / "imgs", {"n": 6})
    (tmp_path / "csv" / "datalist.csv").write_text("image,label\n" + "".join(f"imgs/n/img{i}.png,N\n" for i in range(6)))
    with pytest.raises(DataError, match=r"csv: the training data holds images of 1 class\(es\) \['N'\]"):
        load_datalists(tmp_path / "csv", ["N", "P"])


def test_class_without_training_images_refused(tmp_path):
    """A class of the bundle with no training image at all is an error (it could never be predicted); a class
    missing only from a carved validation or test split stays a warning."""
    from helpers.data import make_class_tree

    make_class_tree(tmp_path, {"NORMAL": 6, "HEMORRHAGE": 6})
    with pytest.raises(DataError, match=r"no training images of the classes \['TUMOUR'\] \(found only"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE", "TUMOUR"])
    # given splits: the class is in the test split only
    root = tmp_path / "splits"
    make_class_tree(root / "train", {"NORMAL": 4, "HEMORRHAGE": 4})
    make_class_tree(root / "test", {"NORMAL": 2, "HEMORRHAGE": 2, "TUMOUR": 2})
    with pytest.raises(DataError, match=r"no training images of the classes \['TUMOUR'\]"):
        load_datalists(root, ["NORMAL", "HEMORRHAGE", "TUMOUR"])


def test_load_labelled_reads_any_layout_without_splitting(tmp_path):
    from helpers.data import make_class_tree

    from medbundle.data.datalists import load_labelled

    make_class_tree(tmp_path / "flat", {"NORMAL": 3, "HEMORRHAGE": 2})
    items = load_labelled(tmp_path / "flat", ["NORMAL", "HEMORRHAGE"])
    assert sorted(item["label"] for item in items) == [0, 0, 0, 1, 1]
    make_class_tree(tmp_path / "split" / "train", {"NORMAL": 2, "HEMORRHAGE": 2})
    make_class_tree(tmp_path / "split" / "test", {"NORMAL": 1}, prefix="t")
    assert len(load_labelled(tmp_path / "split", ["NORMAL", "HEMORRHAGE"])) == 5
    images, labels = stack(n=6)
    mat = save_mat(tmp_path / "Test.mat", "v5", data=images, label=labels)
    assert [item["label"] for item in load_labelled(mat, ["a", "b", "c"])] == [0, 1, 2, 0, 1, 2]
    with pytest.raises(DataError, match="no data found"):
        load_labelled(tmp_path / "split" / "train" / "NORMAL", ["NORMAL", "HEMORRHAGE"])


def test_a_tiny_validation_split_joins_training_and_is_made_again(tmp_path, caplog):
    from helpers.data import make_class_tree

    make_class_tree(tmp_path / "train", {"NORMAL": 20, "PNEUMONIA": 20})
    make_class_tree(tmp_path / "val", {"NORMAL": 2, "PNEUMONIA": 2}, prefix="v")
    make_class_tree(tmp_path / "test", {"NORMAL": 3, "PNEUMONIA": 3}, prefix="t")
    kept = load_datalists(tmp_path, ["NORMAL", "PNEUMONIA"], check=False)
    assert len(kept["val"]) == 4  # min_val_size 0: the data's own split, however small
    with caplog.at_level(logging.WARNING, logger="medbundle.data"):
        made = load_datalists(tmp_path, ["NORMAL", "PNEUMONIA"], check=False, min_val_size=10, val_fraction=0.25)
    assert "fewer than min_val_size 10" in caplog.text
    assert len(made["val"]) == 11 and len(made["train"]) == 33 and len(made["test"]) == 6  # 25 % of the 44
    assert {i["id"] for i in made["test"]} == {i["id"] for i in kept["test"]}  # the data's test split is kept
    assert any(i["id"].startswith("val/") for i in made["train"] + made["val"])
