"""medbundle.data.layouts.discover: finding the layout below dataset_dir, nested copies ignored, no layout."""

from __future__ import annotations

import pytest
from helpers.data import gray, make_class_tree, save_png

from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError


def test_nested_copy_beside_class_folders_ignored(tmp_path):
    make_class_tree(tmp_path, {"NORMAL": 5, "HEMORRHAGE": 5})
    make_class_tree(tmp_path / "head_ct", {"NORMAL": 5, "HEMORRHAGE": 5})
    splits = load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    assert sum(len(v) for v in splits.values()) == 10


def test_layout_found_below_dataset_dir(tmp_path):
    make_class_tree(tmp_path / "archive" / "images", {"NORMAL": 5, "HEMORRHAGE": 5})
    splits = load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    assert splits["train"][0]["id"].startswith("archive/images/")


def test_no_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    save_png(tmp_path / "loose" / "a.png", gray())
    with pytest.raises(DataError, match=r"no data found .*Accepted layouts"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    with pytest.raises(DataError, match="no such folder"):
        load_datalists(tmp_path / "absent", ["NORMAL"])
