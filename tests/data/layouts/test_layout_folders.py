"""medbundle.data.layouts.folders: class folders with or without split folders, through load_datalists."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers.data import CLASSES, make_class_tree, save_png
from PIL import Image

from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError


def test_class_folders_without_splits(tmp_path):
    classes = ["MildDemented", "NonDemented"]
    make_class_tree(tmp_path, {"Mild Demented": 10, "non_demented": 10})
    # other modes and bit depths
    save_png(tmp_path / "Mild Demented" / "sub" / "rgb.png", np.zeros((9, 11, 3), np.uint8))
    save_png(tmp_path / "Mild Demented" / "rgba.png", np.zeros((9, 11, 4), np.uint8))
    save_png(tmp_path / "non_demented" / "deep.png", (np.arange(99, dtype=np.uint16) * 600).reshape(9, 11))
    # junk that must be ignored
    (tmp_path / "non_demented" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "non_demented" / "notes.txt").write_text("not an image")
    make_class_tree(tmp_path / "__MACOSX", {"Mild Demented": 3})
    (tmp_path / "__MACOSX" / "Mild Demented" / "._img0.png").write_bytes(b"resource fork")
    make_class_tree(tmp_path / ".hidden", {"Mild Demented": 3})
    splits = load_datalists(tmp_path, classes, output_dir=tmp_path / "out")
    assert sum(len(v) for v in splits.values()) == 23
    assert (tmp_path / "out" / "split.json").exists()
    by_id = {item["id"]: item for part in splits.values() for item in part}
    assert by_id["Mild Demented/sub/rgb.png"]["label"] == 0 and by_id["non_demented/deep.png"]["label"] == 1
    assert by_id["Mild Demented/sub/rgb.png"]["image"] == str(tmp_path / "Mild Demented" / "sub" / "rgb.png")
    for part in splits.values():
        assert {item["label"] for item in part} == {0, 1}


def test_kaggle_split_folders_with_nested_copy(tmp_path):
    top = tmp_path / "chest_xray"
    counts = {"train": 8, "val": 2, "test": 4}
    for split, n in counts.items():
        make_class_tree(top / split, {"NORMAL": n, "PNEUMONIA": n})
        make_class_tree(top / "chest_xray" / split, {"NORMAL": n, "PNEUMONIA": n})  # duplicate tree
        make_class_tree(tmp_path / "__MACOSX" / "chest_xray" / split, {"NORMAL": n})
    (top / ".DS_Store").write_bytes(b"x")
    splits = load_datalists(tmp_path, ["NORMAL", "PNEUMONIA"], output_dir=tmp_path / "out")
    assert {s: len(v) for s, v in splits.items()} == {s: 2 * n for s, n in counts.items()}
    assert splits["val"][0]["id"] == "chest_xray/val/NORMAL/img0.png"
    assert not (tmp_path / "out" / "split.json").exists()


def test_split_folder_aliases_and_missing_test(tmp_path):
    make_class_tree(tmp_path / "Training", {"a": 10, "b": 10})
    make_class_tree(tmp_path / "valid", {"A": 2, "B": 2})
    splits = load_datalists(tmp_path, ["a", "b"])
    assert {s: len(v) for s, v in splits.items()} == {"train": 17, "val": 4, "test": 3}


def test_folder_errors(tmp_path):
    make_class_tree(tmp_path, {"NORMAL": 4, "HEMORRHAGE": 4, "Hemorrhage_old": 2})
    with pytest.raises(DataError, match=r"Hemorrhage_old: folder name .* matches none of the class names"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    shutil.rmtree(tmp_path / "Hemorrhage_old")
    shutil.rmtree(tmp_path / "NORMAL")
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "NORMAL" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"NORMAL: class folder holds no images"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])


def test_empty_split_folder(tmp_path):
    make_class_tree(tmp_path / "train", {"NORMAL": 4, "HEMORRHAGE": 4})
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match=r"/test: no images in class folders"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])


def _kaggle_tree(root, names, n=6):
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 16), 30 * k + i, np.uint8)).save(root / name / f"{name[:4]}{i}.jpg")


def test_kaggle_folders_with_spaces_underscores_and_split_folders(tmp_path):
    _kaggle_tree(tmp_path / "Alzheimer_s Dataset" / "train", ["Mild Demented", "Moderate_Demented", "NonDemented",
                                                               "Very Mild Demented"])
    _kaggle_tree(tmp_path / "Alzheimer_s Dataset" / "test", ["MildDemented", "ModerateDemented", "Non_Demented",
                                                              "VeryMildDemented"], n=2)
    lists = load_datalists(tmp_path, CLASSES, output_dir=tmp_path / "run")
    assert len(lists["test"]) == 8 and len(lists["train"]) + len(lists["val"]) == 24
    assert {it["label"] for it in lists["test"] if "Mild" in it["image"] and "Very" not in it["image"]} == {2}
    assert {it["label"] for it in lists["test"] if "Non_Demented" in it["image"]} == {0}


def test_unmatched_class_folder_is_named_in_the_error(tmp_path):
    _kaggle_tree(tmp_path, ["MildDemented", "NonDemented", "SevereDemented"])
    with pytest.raises(DataError, match=r"SevereDemented: folder name 'SevereDemented' matches none of the class"):
        load_datalists(tmp_path, CLASSES)
