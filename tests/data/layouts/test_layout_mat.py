"""medbundle.data.layouts.mat: Train/Val/Test.mat stacks with optional masks, through load_datalists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.data import save_mat, stack
from monai.transforms import LoadImage

from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError
from medbundle.data.matfile import MatSliceReader


CT_CLASSES = ["no", "mild", "severe"]


def ids(splits: dict[str, list[dict]]) -> dict[str, list[str]]:
    return {s: [item["id"] for item in items] for s, items in splits.items()}


def test_mat_all_splits_no_split_made(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for i, name in enumerate(["Train.mat", "validation.mat", "TEST.mat"]):
        images, labels = stack(n=6 - i, seed=i)
        save_mat(data / name, "v5" if i != 1 else "v73", data=images, label=labels.astype(float))
    save_mat(data / "Train_mask.mat", "v5", mask=np.zeros((6, 8, 8), np.uint8))
    splits = load_datalists(data, CT_CLASSES, output_dir=out)
    assert {s: len(v) for s, v in splits.items()} == {"train": 6, "val": 5, "test": 4}
    assert not (out / "split.json").exists()
    item = splits["train"][1]
    assert item == {
        "image": f"{data / 'Train.mat'}#1",
        "label": 1,
        "id": "Train.mat#1",
        "mask": f"{data / 'Train_mask.mat'}#1",
    }
    assert "mask" not in splits["val"][0]
    mask = LoadImage(reader=MatSliceReader("mask", None), image_only=True, ensure_channel_first=True)(item["mask"])
    assert tuple(mask.shape) == (1, 8, 8)


def test_mat_train_only_split_made_saved_and_reused(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    images, labels = stack(n=40)
    save_mat(data / "train.mat", "v5", data=images, label=labels)
    first = load_datalists(data, CT_CLASSES, output_dir=out)
    assert {s: len(v) for s, v in first.items()} == {"train": 28, "val": 6, "test": 6}
    for part in first.values():
        assert {item["label"] for item in part} == {0, 1, 2}
    saved = json.loads((out / "split.json").read_text())
    assert saved["splits"] == ids(first)
    assert ids(load_datalists(data, CT_CLASSES, output_dir=out)) == ids(first)
    # the saved file is what is used: move one image from train to val by hand
    moved = saved["splits"]["train"].pop(0)
    saved["splits"]["val"].append(moved)
    (out / "split.json").write_text(json.dumps(saved))
    again = load_datalists(data, CT_CLASSES, output_dir=out)
    assert moved in ids(again)["val"] and len(again["val"]) == 7
    # another seed makes (and saves) a new split
    other = load_datalists(data, CT_CLASSES, output_dir=out, seed=1)
    assert ids(other) != ids(first) and json.loads((out / "split.json").read_text())["seed"] == 1


def test_mat_train_test_only_makes_val(tmp_path):
    for name, n in (("Train.mat", 30), ("Test.mat", 9)):
        images, labels = stack(n=n)
        save_mat(tmp_path / name, "v5", data=images, label=labels)
    splits = load_datalists(tmp_path, CT_CLASSES, output_dir=None)
    assert {s: len(v) for s, v in splits.items()} == {"train": 26, "val": 4, "test": 9}
    assert all(i["id"].startswith("Test.mat#") for i in splits["test"])


def test_mat_custom_keys_and_errors_name_the_file(tmp_path):
    images, labels = stack(n=20)
    save_mat(tmp_path / "Train.mat", "v73", X=images, y=labels)
    assert len(load_datalists(tmp_path, CT_CLASSES, data_key="X", label_key="y")["train"]) == 14
    with pytest.raises(DataError, match=r"Train\.mat: no image variable 'data' \(variables found: \['X', 'y'\]\)"):
        load_datalists(tmp_path, CT_CLASSES)


def test_mat_empty_val_and_bad_mask(tmp_path):
    images, labels = stack()
    save_mat(tmp_path / "Train.mat", "v5", data=images, label=labels)
    save_mat(tmp_path / "Val.mat", "v5", data=np.zeros((0, 8, 8)), label=np.zeros(0))
    with pytest.raises(DataError, match="Val.mat"):
        load_datalists(tmp_path, CT_CLASSES)
    (tmp_path / "Val.mat").unlink()
    save_mat(tmp_path / "Train_mask.mat", "v5", mask=np.zeros((5, 8, 8)))
    with pytest.raises(DataError, match="Train_mask.mat: masks of shape"):
        load_datalists(tmp_path, CT_CLASSES)


def test_mat_labels_out_of_range_via_load_datalists(tmp_path):
    images, labels = stack()
    save_mat(tmp_path / "Train.mat", "v5", data=images, label=labels)
    with pytest.raises(DataError, match=r"Train\.mat: 2 labels in 'label' are outside 0\.\.1"):
        load_datalists(tmp_path, ["a", "b"])
