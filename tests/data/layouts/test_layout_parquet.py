"""medbundle.data.layouts.parquet: Hugging Face parquet tables, labels mapped by class name, through load_datalists."""

from __future__ import annotations

import pytest
from helpers.data import CLASSES, HF_NAMES, write_hf_parquet

from medbundle.data import load_datalists
from medbundle.transforms import LoadImage2D


@pytest.mark.parametrize("metadata", [True, False])
def test_parquet_labels_are_mapped_by_name_and_decoded_lazily(tmp_path, metadata):
    labels = [0, 1, 2, 3] * 10  # Mild, Moderate, Non, VeryMild in the parquet numbering
    write_hf_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", labels, class_label_metadata=metadata)
    write_hf_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [2, 3, 0, 1], values=[7, 8, 9, 10],
                     class_label_metadata=metadata)
    lists = load_datalists(tmp_path, CLASSES, output_dir=tmp_path / "run", label_names=None if metadata else HF_NAMES)
    assert len(lists["test"]) == 4 and len(lists["train"]) + len(lists["val"]) == 40
    by_row = {int(it["image"].rsplit("#", 1)[1]): it["label"] for it in lists["test"]}
    # parquet 2 Non_Demented -> 0 NonDemented, 3 Very_Mild -> 1, 0 Mild -> 2, 1 Moderate -> 3
    assert by_row == {0: 0, 1: 1, 2: 2, 3: 3}
    assert lists["test"][0]["image"].endswith("test-00000-of-00001.parquet#0")
    img = LoadImage2D()(lists["test"][0]["image"])
    assert img.shape == (1, 24, 20) and abs(float(img[0, 10, 10]) - 7) <= 3 and float(img[0, 3, 5]) > 200


def test_parquet_without_names_uses_indices_with_a_warning(tmp_path, caplog):
    write_hf_parquet(tmp_path / "train.parquet", [0, 1, 2, 3] * 3, class_label_metadata=False)
    lists = load_datalists(tmp_path, CLASSES, val_fraction=0.25, test_fraction=0.25)
    assert sorted(it["label"] for s in lists.values() for it in s) == sorted([0, 1, 2, 3] * 3)
    assert "integer labels without class names" in caplog.text
