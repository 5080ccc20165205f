"""medbundle.data.kermany and the Kermany release as downloaded: ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}``
with its nested ``chest_xray/chest_xray/`` copy and ``__MACOSX`` resource forks, the patient groups of its file names
(synthetic names, and the real names of the shared training folder: realdata)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from medbundle.data import KERMANY_GROUP_PATTERN, kermany_group
from medbundle.data.datalists import list_inputs, load_datalists
from medbundle.data.errors import DataError
from medbundle.data.splits import _groups_from_pattern

CLASSES = ["NORMAL", "PNEUMONIA"]
KERMANY_TRAIN = SHARED_DATA / "pneumonia_xray" / "train"
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)  # an AppleDouble header, not a JPEG

# names as in the release: patient -> its file names
NAMES = {
    "NORMAL": ["IM-0115-0001.jpeg", "IM-0429-0001-0001.jpeg", "IM-0429-0001-0002.jpeg",
               "NORMAL2-IM-0587-0001-0001.jpeg", "NORMAL2-IM-0587-0001-0002.jpeg", "NORMAL2-IM-1427-0001.jpeg"],
    "PNEUMONIA": ["person1_bacteria_1.jpeg", "person1_virus_6.jpeg", "person12_bacteria_46.jpeg",
                  "person447_virus_921_1.jpeg", "person1946_bacteria_4874.jpeg"],
}


@pytest.mark.parametrize("name, group", [
    ("person1_bacteria_1.jpeg", "person1"),
    ("person1_virus_6.jpeg", "person1"),  # bacterial and viral images of one patient: one group
    ("person12_bacteria_46.jpeg", "person12"),  # not person1
    ("person447_virus_921_1.jpeg", "person447"),
    ("IM-0115-0001.jpeg", "IM-0115"),
    ("IM-0429-0001-0002.jpeg", "IM-0429"),
    ("NORMAL2-IM-0429-0001.jpeg", "IM-0429"),  # the NORMAL2 series merged with IM-<N>: coarser, never a leak
    ("chest_xray/train/NORMAL/NORMAL2-IM-1427-0001.jpeg", "IM-1427"),
    ("chest_xray/test/PNEUMONIA/person100_bacteria_475.jpeg", "person100"),
    ("person/IM-0001-0001.jpeg", "IM-0001"),  # a folder named 'person' is not a patient
    ("notes/img0.png", None),
    ("xperson1_bacteria_1.jpeg", None),
    ("IM-0115.jpeg", None),
])
def test_kermany_group_of_names(name, group):
    assert kermany_group(name) == group


def _jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((12, 10), value, np.uint8)
    arr[2:5, 3:7] = 255 - value
    Image.fromarray(arr).convert("RGB").save(path, quality=90)


def _release(root: Path, splits=("train", "val", "test")) -> Path:
    """The Kaggle download unpacked: ``chest_xray/`` holding the split folders, a nested ``chest_xray/`` copy and
    ``__MACOSX/`` with a ``._`` fork per image; a stray fork beside the images too. Returns ``chest_xray``."""
    top = root / "chest_xray"
    for split in splits:
        for k, (cls, names) in enumerate(NAMES.items()):
            for i, name in enumerate(names):
                for tree in (top, top / "chest_xray"):
                    _jpeg(tree / split / cls / name, 40 * k + 7 * i)
                fork = top / "__MACOSX" / "chest_xray" / split / cls / f"._{name}"
                fork.parent.mkdir(parents=True, exist_ok=True)
                fork.write_bytes(APPLEDOUBLE)
    (top / splits[0] / "NORMAL" / "._IM-0115-0001.jpeg").write_bytes(APPLEDOUBLE)  # unpacked without __MACOSX
    (top / ".DS_Store").write_bytes(b"\0junk")
    return top


def test_release_layout_trains_unchanged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="medbundle.data")
    _release(tmp_path)
    splits = load_datalists(tmp_path, CLASSES, output_dir=tmp_path / "out", group_pattern=KERMANY_GROUP_PATTERN)
    n = sum(len(v) for v in NAMES.values())
    assert {s: len(v) for s, v in splits.items()} == {"train": n, "val": n, "test": n}
    ids = [item["id"] for part in splits.values() for item in part]
    assert all(i.startswith(("chest_xray/train/", "chest_xray/val/", "chest_xray/test/")) for i in ids)
    assert not any("/._" in i or "__MACOSX" in i or "chest_xray/chest_xray" in i for i in ids)
    assert {i["group"] for i in splits["train"]} == {"IM-0115", "IM-0429", "IM-0587", "IM-1427", "person1",
                                                     "person12", "person447", "person1946"}
    skipped = [r.getMessage() for r in caplog.records if "resource fork" in r.getMessage()]
    assert len(skipped) == 1, skipped  # one line for all of them
    assert not [r for r in caplog.records if "a link to the folder" in r.getMessage()]  # no link, no loop warning
    assert "1 __MACOSX folder(s) and 34 '._*' macOS resource fork(s)" in skipped[0]  # 3 x 11 in __MACOSX + 1 stray
    assert not (tmp_path / "out" / "split.json").exists()  # the release has its splits


def test_release_train_only_is_split_by_patient(tmp_path):
    top = _release(tmp_path, splits=("train",))
    for p in range(30):  # more patients, so that three parts can be carved out
        for k in range(3):
            _jpeg(top / "train" / "PNEUMONIA" / f"person{100 + p}_bacteria_{3 * p + k}.jpeg", 3 * p + k)
            _jpeg(top / "train" / "NORMAL" / f"IM-{2000 + p:04d}-000{k + 1}.jpeg", 3 * p + k)
    splits = load_datalists(top, CLASSES, output_dir=tmp_path / "out", group_pattern=KERMANY_GROUP_PATTERN,
                            check=False)
    groups = {s: {item["group"] for item in part} for s, part in splits.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    saved = json.loads((tmp_path / "out" / "split.json").read_text())
    assert saved["method"].startswith("grouped by subject")


def test_resource_fork_as_input(tmp_path):
    top = _release(tmp_path, splits=("test",))
    forks = sorted((top / "__MACOSX").rglob("._*.jpeg"))
    with pytest.raises(DataError, match=r"\._IM-0115-0001.jpeg: a macOS resource fork .*IM-0115-0001.jpeg"):
        list_inputs(forks[0].parent / "._IM-0115-0001.jpeg")
    with pytest.raises(DataError, match="__MACOSX: no images found"):  # a folder of forks only
        list_inputs(top / "__MACOSX")
    assert [i["id"] for i in list_inputs(top / "test" / "NORMAL")] == NAMES["NORMAL"]


@pytest.mark.realdata
@pytest.mark.skipif(not KERMANY_TRAIN.is_dir(), reason=f"real data absent: {KERMANY_TRAIN}")
def test_real_kermany_names_group_by_patient(tmp_path):
    files = sorted(p for p in KERMANY_TRAIN.rglob("*.jpeg"))
    assert len(files) == 5216
    groups = {p: kermany_group(p.relative_to(KERMANY_TRAIN).as_posix()) for p in files}
    assert None not in groups.values()
    sizes = Counter(groups.values())
    assert len(sizes) == 2635 and sizes.most_common(1) == [("person23", 30)]
    # no group spans the two classes, and every exact duplicate lies inside one group
    assert all(len({p.parent.name for p in files if groups[p] == g}) == 1 for g in ("person23", "IM-0587"))
    assert len({(groups[p], p.parent.name) for p in files}) == len(sizes)
    by_hash: dict[str, set] = {}
    for p in files:
        by_hash.setdefault(hashlib.md5(p.read_bytes()).hexdigest(), set()).add(groups[p])
    assert sum(len(v) > 1 for v in by_hash.values()) == 0
    # the pattern as the bundle key uses it: every id matches, and the carved splits share no patient
    splits = load_datalists(KERMANY_TRAIN, CLASSES, output_dir=tmp_path, group_pattern=KERMANY_GROUP_PATTERN,
                            check=False)
    parts = {s: {item["group"] for item in part} for s, part in splits.items()}
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"])
    assert json.loads((tmp_path / "split.json").read_text())["method"] == "grouped by subject (2635 groups)"


def test_pattern_must_match_every_id(tmp_path):
    splits = {"train": [{"id": "NORMAL/IM-0001-0001.jpeg"}, {"id": "NORMAL/scan_7.jpeg"}]}
    with pytest.raises(DataError, match=r"matches 1 of 2 image ids"):
        _groups_from_pattern(splits, KERMANY_GROUP_PATTERN, tmp_path)


def test_bad_input_in_a_class_folder_is_named(tmp_path):
    """Beside real JPEGs: a CMYK JPEG and a 16-bit PNG load; an SR DICOM and a DICOM without pixels are refused, each
    file named, before anything is written."""
    import shutil

    import pydicom
    from pydicom.data import get_testdata_file

    top = _release(tmp_path, splits=("train",))
    normal = top / "train" / "NORMAL"
    Image.new("CMYK", (16, 16), (0, 0, 0, 128)).save(normal / "IM-0900-0001.jpeg")
    Image.fromarray((np.arange(256, dtype=np.uint16) * 250).reshape(16, 16)).save(normal / "IM-0901-0001.png")
    splits = load_datalists(top, CLASSES, output_dir=tmp_path / "ok", group_pattern=KERMANY_GROUP_PATTERN)
    assert sum(len(v) for v in splits.values()) == sum(len(v) for v in NAMES.values()) + 2
    shutil.copy(get_testdata_file("test-SR.dcm"), normal / "IM-0902-0001.dcm")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(normal / "IM-0903-0001.dcm")
    with pytest.raises(DataError, match=r"2 of 15 image files cannot be read") as info:
        load_datalists(top, CLASSES, output_dir=tmp_path / "bad", group_pattern=KERMANY_GROUP_PATTERN)
    message = str(info.value)
    assert "IM-0902-0001.dcm: a DICOM file without pixel data (Comprehensive SR Storage)" in message
    assert "IM-0903-0001.dcm: a DICOM file without pixel data (CT Image Storage)" in message
    assert "IM-0900" not in message and "IM-0901" not in message
