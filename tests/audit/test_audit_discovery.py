"""medbundle.audit.discovery: images, their class and split from the folder names; masks, hidden files and macOS
leftovers skipped; folders that cannot be audited refused in one line."""

from __future__ import annotations

import pytest
from audit_images import picture, save

from medbundle.audit import find_audit_images
from medbundle.audit.discovery import is_mask_folder
from medbundle.data.errors import DataError


def _rel(items, root):
    return {str(p["path"])[len(str(root)) + 1:]: (p["source"], p["class"], p["split"]) for p in items}


def test_classes_splits_and_masks(tmp_path):
    covid = tmp_path / "covid"
    image = picture(0)
    for cls in ("COVID-19", "Normal"):
        save(covid / "Infection Segmentation Data" / "Train" / cls / "images" / "a.png", image)
        save(covid / "Infection Segmentation Data" / "Train" / cls / "lung masks" / "a.png", image)
        save(covid / "Infection Segmentation Data" / "Train" / cls / "infection masks" / "a.png", image)
    save(covid / "Val" / "Normal" / "b.png", image)
    save(covid / "loose.png", image)
    kermany = tmp_path / "kermany"
    save(kermany / "chest_xray" / "test" / "PNEUMONIA" / "p.jpeg", image)
    save(kermany / "chest_xray" / "test" / "PNEUMONIA" / "._p.jpeg", image)
    save(kermany / "__MACOSX" / "chest_xray" / "x.jpeg", image)
    save(kermany / ".hidden" / "h.png", image)
    save(kermany / "chest_xray" / ".h.png", image)
    items = find_audit_images([covid, kermany])
    assert _rel(items, tmp_path) == {
        "covid/Infection Segmentation Data/Train/COVID-19/images/a.png": ("covid", "COVID-19", "train"),
        "covid/Infection Segmentation Data/Train/Normal/images/a.png": ("covid", "Normal", "train"),
        "covid/Val/Normal/b.png": ("covid", "Normal", "val"),
        "covid/loose.png": ("covid", "", ""),
        "kermany/chest_xray/test/PNEUMONIA/p.jpeg": ("kermany", "PNEUMONIA", "test"),
    }
    assert items.skipped_masks == {"covid": 4, "kermany": 0}


@pytest.mark.parametrize("name, mask", [("lung masks", True), ("infection masks", True), ("Masks", True),
                                        ("seg_mask", True), ("images", False), ("Masked-AI", False)])
def test_mask_folders(name, mask):
    assert is_mask_folder(name) is mask


def test_sources_with_the_same_name_are_told_apart(tmp_path):
    for parent in ("a", "b"):
        save(tmp_path / parent / "train" / "X" / "1.png", picture(1))
    items = find_audit_images([tmp_path / "a" / "train", tmp_path / "b" / "train"])
    assert sorted({i["source"] for i in items}) == ["a/train", "b/train"]
    assert {i["split"] for i in items} == {""}  # the source folder itself is not read as a split


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("file", "not a folder"),
    ("empty", "no image files below it"),
    ("only_masks", "no image files below it (.png, .jpg, .dcm, ...; 1 mask image(s) skipped)"),
    ("nested", "inside"),
    ("twice", "the same folder as"),
])
def test_folders_that_cannot_be_audited_give_one_line(tmp_path, case, message):
    good = tmp_path / "good"
    save(good / "A" / "1.png", picture(2))
    bad = {"missing": tmp_path / "nope", "file": good / "A" / "1.png", "empty": tmp_path / "empty",
           "only_masks": tmp_path / "m", "nested": good / "A", "twice": good}[case]
    (tmp_path / "empty").mkdir()
    save(tmp_path / "m" / "masks" / "1.png", picture(3))
    with pytest.raises(DataError) as e:
        find_audit_images([good, bad])
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(str(bad if case != "twice" else good))
    assert "Pass" in str(e.value)  # says what to do
