"""medbundle.data.files: unreadable images reported together."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.data import make_class_tree, truncate
from PIL import Image

from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_images_reported_together(tmp_path, kind):
    make_class_tree(tmp_path, {"NORMAL": 6, "HEMORRHAGE": 6})
    bad = []
    for name in ("NORMAL/bad1", "HEMORRHAGE/bad2"):
        path = tmp_path / f"{name}.{kind}"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        bad.append(truncate(path))
    with pytest.raises(DataError) as info:
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    message = str(info.value)
    assert all(str(p) in message for p in bad) and "2 of 14 image files cannot be read" in message
    assert "Remove or replace" in message
    assert len(load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"], check=False)["train"]) > 0


def _loop_tree(root):
    """Class folders with symbolic links pointing up: into the class folder itself, to the data root, and to a
    sibling class folder (each would find images twice or under the wrong class, or loop without end)."""
    make_class_tree(root, {"NORMAL": 3, "HEMORRHAGE": 3})
    (root / "NORMAL" / "sub").mkdir()
    (root / "NORMAL" / "sub" / "a").symlink_to("..", target_is_directory=True)
    (root / "NORMAL" / "up").symlink_to("../..", target_is_directory=True)
    (root / "HEMORRHAGE" / "other").symlink_to("../NORMAL", target_is_directory=True)
    return root


@pytest.mark.timeout(60)
def test_symlink_loops_in_class_folders(tmp_path, caplog):
    root = _loop_tree(tmp_path / "data")
    lists = load_datalists(root, ["NORMAL", "HEMORRHAGE"], val_fraction=1 / 3, test_fraction=1 / 3)
    items = [item for part in lists.values() for item in part]
    assert len(items) == 6 and len({item["image"] for item in items}) == 6
    assert all(item["image"].startswith(str(root / ("NORMAL" if item["label"] == 0 else "HEMORRHAGE")))
               for item in items)
    assert "skipped, a link to the folder" in caplog.text and "sub/a" in caplog.text


@pytest.mark.timeout(60)
def test_symlink_loop_in_folder_search_and_list_inputs(tmp_path, caplog):
    from medbundle.data.datalists import list_inputs

    root = tmp_path / "wrapper"
    (root / "junk").mkdir(parents=True)
    (root / "junk" / "loop").symlink_to("..", target_is_directory=True)  # a loop met before the data
    _loop_tree(root / "zdata")
    lists = load_datalists(root, ["NORMAL", "HEMORRHAGE"], val_fraction=1 / 3, test_fraction=1 / 3)
    assert sum(len(part) for part in lists.values()) == 6
    ids = [item["id"] for item in list_inputs(root)]
    assert len(ids) == 6 == len(set(ids))
    (tmp_path / "empty" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "x" / "loop").symlink_to("..", target_is_directory=True)
    with pytest.raises(DataError, match="no data found"):  # finishes, and says so
        load_datalists(tmp_path / "empty", ["NORMAL", "HEMORRHAGE"])
    with pytest.raises(DataError, match="no images found"):
        list_inputs(tmp_path / "empty")


def test_linked_class_folder_contents_are_found(tmp_path):
    """A link to a folder outside the data (a common way to assemble a data set) is followed."""
    make_class_tree(tmp_path / "elsewhere", {"more": 2})
    make_class_tree(tmp_path / "data", {"NORMAL": 3, "HEMORRHAGE": 3})
    (tmp_path / "data" / "NORMAL" / "more").symlink_to(tmp_path / "elsewhere" / "more", target_is_directory=True)
    lists = load_datalists(tmp_path / "data", ["NORMAL", "HEMORRHAGE"], check=False)
    assert sum(len(part) for part in lists.values()) == 8
