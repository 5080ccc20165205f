"""medbundle.data.layouts.table: metadata tables (Figure1, ieee8023 covid-chestxray-dataset), through load_datalists
and load_labelled."""

from __future__ import annotations

import csv
import io
import logging

import pytest
from conftest import SHARED_DATA
from helpers.data import gray, make_class_tree, save_png
from PIL import Image

from medbundle.data import load_datalists, load_labelled
from medbundle.data.errors import DataError

CLASSES = ["COVID-19", "Pneumonia", "Normal"]
FIGURE1 = SHARED_DATA / "covid_xray_external"
FIGURE1_MAP = {"COVID-19": "COVID-19", "Pneumonia": "Pneumonia", "No finding": "Normal"}


def write_table(path, header, rows, encoding="utf-8"):
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([header, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))


def figure1(root, n=4):
    """Figure1's layout: cp1252 metadata.csv (a degree sign in the notes), images/<patientid>.<jpg|png>."""
    findings = ["COVID-19", "No finding", "Pneumonia", ""]
    rows = []
    for k, finding in enumerate(findings):
        for i in range(n):
            pid = f"COVID-{k:03d}{i}"
            suffix = ".png" if i == 0 else ".jpg"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(gray(10 * k + i, (20, 16))).save(root / "images" / f"{pid}{suffix}")
            rows.append((pid, "M", finding, "AP erect" if i % 2 else "", "T 39.1\u00b0C"))
    write_table(root / "metadata.csv", ("patientid", "sex", "finding", "view", "notes"), rows, "cp1252")
    return rows


def test_figure1_layout_cp1252_findings_mapped_and_blanks_listed(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    figure1(tmp_path / "figure1")
    items = load_labelled(tmp_path, CLASSES, label_column="finding", image_column="patientid",
                          group_column="patientid", finding_map=FIGURE1_MAP)
    assert len(items) == 12 and sorted(item["label"] for item in items) == [0] * 4 + [1] * 4 + [2] * 4
    first = items[0]
    assert first == {"image": str(tmp_path / "figure1" / "images" / "COVID-0000.png"), "label": 0,
                     "id": "figure1/images/COVID-0000.png", "group": "COVID-0000"}
    assert "metadata.csv: read as cp1252 (it is not UTF-8)" in caplog.text
    assert ("4 row(s) with a blank finding map to no class, left out (first: ['COVID-0030', 'COVID-0031', "
            "'COVID-0032', 'COVID-0033'])") in caplog.text
    assert "'No finding' -> Normal 4" in caplog.text and "found table layout in" in caplog.text
    splits = load_datalists(tmp_path, CLASSES, label_column="finding", image_column="patientid",
                            finding_map=FIGURE1_MAP, val_fraction=0.25, test_fraction=0.25, check=False)
    assert sum(len(v) for v in splits.values()) == 12 and "group" not in splits["train"][0]


def ieee8023(root):
    """ieee8023's layout: UTF-8 (with BOM) metadata.csv, column filename in the images folder, hierarchical
    findings, several views, rows of CT volumes in another folder."""
    header = ("patientid", "offset", "finding", "view", "modality", "folder", "filename", "url")
    rows, findings = [], ["Pneumonia/Viral/COVID-19", "No Finding", "Pneumonia/Bacterial/Streptococcus", "todo"]
    (root / "images").mkdir(parents=True)
    for i in range(24):
        name = f"{i:04d}-x-ray.jpeg"
        Image.fromarray(gray(i, (16, 16))).save(root / "images" / name, format="JPEG")
        rows.append((str(i // 2), "0", findings[i % 4], ["PA", "AP", "AP Supine", "L"][(i // 4) % 4], "X-ray",
                     "images", name, "https://example.org"))
    rows.append(("99", "", "Pneumonia/Viral/COVID-19", "Axial", "CT", "volumes", "ct.nii.gz", ""))
    write_table(root / "metadata.csv", header, rows, "utf-8-sig")
    return rows


IEEE_MAP = {"Pneumonia/Viral/COVID-19": "COVID-19", "Pneumonia/Bacterial/Streptococcus": "Pneumonia",
            "No Finding": "Normal", "todo": None}


def test_ieee8023_layout_with_row_filter_groups_and_source(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ieee8023(tmp_path)
    keys = dict(label_column="finding", image_column="filename", group_column="patientid", source_column="url",
                row_filter={"view": ["PA", "AP"], "modality": "X-ray"})
    items = load_labelled(tmp_path, CLASSES, finding_map=IEEE_MAP, **keys)
    # views PA and AP: rows 0-7 and 16-23 (8-15 are AP Supine / L); of these 16, the 'todo' ones (4) are left out
    kept = [i for i in range(24) if (i // 4) % 4 < 2 and i % 4 != 3]
    assert [item["id"] for item in items] == [f"images/{i:04d}-x-ray.jpeg" for i in kept]
    assert [item["label"] for item in items] == [0, 2, 1] * 4
    assert items[0]["group"] == "0" and items[0]["source"] == "https://example.org"
    assert "metadata.csv: read as utf-8-sig" in caplog.text
    assert "kept 16 of 25 rows (left out: view='AP Supine' 4, view='L' 4, view='Axial' 1)" in caplog.text
    assert "4 row(s) with finding 'todo' (finding_map: null) map to no class" in caplog.text
    splits = load_datalists(tmp_path, CLASSES, finding_map=IEEE_MAP, val_fraction=0.2, test_fraction=0.2,
                            output_dir=tmp_path / "out", **keys)
    assert "grouped by subject" in caplog.text
    groups = {s: {item["group"] for item in part} for s, part in splits.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])


def test_unmapped_findings_and_missing_images_are_one_line_errors(tmp_path):
    ieee8023(tmp_path)
    keys = dict(label_column="finding", image_column="filename", row_filter={"modality": ["X-ray"]})
    with pytest.raises(DataError, match=r"findings in column 'finding' that are neither classes .* nor in "
                                        r"finding_map: \{'Pneumonia/Viral/COVID-19': 6, 'No Finding': 6, "
                                        r"'Pneumonia/Bacterial/Streptococcus': 6, 'todo': 6\}\. Add them to "
                                        r"finding_map") as info:
        load_labelled(tmp_path, CLASSES, **keys)
    assert "\n" not in str(info.value)
    # without the modality filter, the CT row names a file that is not there
    keys["row_filter"] = None
    (tmp_path / "images" / "0004-x-ray.jpeg").unlink()
    with pytest.raises(DataError, match=r"metadata.csv: 2 of 19 rows name images that do not exist \(first: "
                                        r"\['0004-x-ray.jpeg', 'ct.nii.gz'\]\)\. .*row_filter") as info:
        load_labelled(tmp_path, CLASSES, finding_map=IEEE_MAP, **keys)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("keys, message", [
    (dict(label_column="diagnosis", image_column="filename"), r"no column 'diagnosis' \(the table has \['patientid', .*\]\)\. Set label_column"),
    (dict(label_column="finding", image_column="image"), r"no column 'image' .*Set image_column"),
    (dict(label_column="finding", image_column="filename", group_column="subject"), r"Set group_column"),
    (dict(label_column="finding", image_column="filename", row_filter={"projection": ["PA"]}), r"Set row_filter"),
    (dict(label_column="finding", image_column="filename", finding_map={"todo": "Viral"}),
     r"finding_map: 'todo' -> 'Viral', which is none of the classes"),
    (dict(label_column="finding", image_column="filename", finding_map={"No Finding": "Normal", "no_finding": None}),
     r"finding_map: 'no_finding' is given twice with different classes"),
])
def test_bad_keys_name_the_key_to_fix(tmp_path, keys, message):
    ieee8023(tmp_path)
    with pytest.raises(DataError, match=message):
        load_labelled(tmp_path, CLASSES, **keys)


def test_table_layout_only_with_label_column_and_before_class_folders(tmp_path):
    make_class_tree(tmp_path, {"COVID": 3, "Normal": 3})
    write_table(tmp_path / "labels.csv", ("file", "dx"), [(f"COVID/img{i}.png", "Non-COVID") for i in range(3)])
    aliases = {"COVID": "COVID-19", "Non-COVID": "Pneumonia"}
    assert {i["label"] for i in load_labelled(tmp_path, CLASSES, class_aliases=aliases)} == {0, 2}  # class folders
    items = load_labelled(tmp_path, CLASSES, class_aliases=aliases, table_file="LABELS.csv", label_column="dx",
                          image_column="file")
    assert [(i["id"], i["label"]) for i in items] == [(f"COVID/img{i}.png", 1) for i in range(3)]  # by its alias


def test_table_file_problems(tmp_path):
    save_png(tmp_path / "a.png", gray())
    (tmp_path / "images").mkdir()
    Image.fromarray(gray()).save(tmp_path / "images" / "a.jpg")
    write_table(tmp_path / "metadata.csv", ("id", "finding"), [("a", "Normal")])
    with pytest.raises(DataError, match=r"the table's image 'a' could be any of \['a.png', 'a.jpg'\]"):
        load_labelled(tmp_path, CLASSES, label_column="finding", image_column="id")
    write_table(tmp_path / "metadata.csv", ("id", "finding"), [("a.png", "Normal"), ("a.png", "Normal")])
    with pytest.raises(DataError, match=r"1 images are named by more than one row \(first: \['a.png'\]\)"):
        load_labelled(tmp_path, CLASSES, label_column="finding", image_column="id")
    write_table(tmp_path / "metadata.csv", ("id", "finding"), [("a.png", "")])
    with pytest.raises(DataError, match=r"none of its 1 rows .* has a finding that maps to a class"):
        load_labelled(tmp_path, CLASSES, label_column="finding", image_column="id")
    (tmp_path / "metadata.csv").write_bytes(b"id,finding\na.png,\x81\x8d\n")
    with pytest.raises(DataError, match=r"metadata.csv: neither UTF-8 nor cp1252 text\. Save the table as UTF-8"):
        load_labelled(tmp_path, CLASSES, label_column="finding", image_column="id")


@pytest.mark.realdata
@pytest.mark.skipif(not FIGURE1.is_dir(), reason=f"real data absent: {FIGURE1}")
def test_real_figure1(caplog):
    caplog.set_level(logging.INFO)
    items = load_labelled(FIGURE1, CLASSES, label_column="finding", image_column="patientid",
                          group_column="patientid", finding_map=FIGURE1_MAP)
    assert len(items) == 40
    assert sorted(CLASSES[item["label"]] for item in items) == ["COVID-19"] * 35 + ["Normal"] * 3 + ["Pneumonia"] * 2
    assert all(item["id"].startswith("images/COVID-") for item in items)
    assert "15 row(s) with a blank finding map to no class" in caplog.text and "'COVID-00002'" in caplog.text
    assert "read as cp1252" in caplog.text
