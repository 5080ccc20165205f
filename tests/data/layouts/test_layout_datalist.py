"""medbundle.data.layouts.datalist: datalist.csv and datalist.json, through load_datalists."""

from __future__ import annotations

import csv
import json

import pytest
from helpers.data import gray, make_class_tree, save_png

from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError


def test_csv_datalist_with_and_without_split(tmp_path):
    make_class_tree(tmp_path / "imgs", {"n": 10, "p": 10})
    rows = [
        (f"imgs/{c}/img{i}.png", c.upper() if i % 2 else str(k), "train" if i < 6 else ("val" if i < 8 else "testing"))
        for k, c in enumerate("np")
        for i in range(10)
    ]
    with open(tmp_path / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label", "split"), *rows])
    splits = load_datalists(tmp_path, ["N", "P"], output_dir=tmp_path / "out")
    assert {s: len(v) for s, v in splits.items()} == {"train": 12, "val": 4, "test": 4}
    assert splits["train"][0] == {"image": str(tmp_path / "imgs/n/img0.png"), "label": 0, "id": "imgs/n/img0.png"}
    assert not (tmp_path / "out" / "split.json").exists()
    with open(tmp_path / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label"), *(r[:2] for r in rows)])
    splits = load_datalists(tmp_path, ["N", "P"], output_dir=tmp_path / "out")
    assert sum(len(v) for v in splits.values()) == 20 and (tmp_path / "out" / "split.json").exists()


def test_csv_datalist_errors(tmp_path):
    save_png(tmp_path / "a.png", gray())
    (tmp_path / "datalist.csv").write_text("image,label\na.png,0\nmissing1.png,1\nsub/missing2.png,1\n")
    with pytest.raises(DataError, match=r"datalist.csv: 2 of 3 listed images do not exist .*missing1.png"):
        load_datalists(tmp_path, ["x", "y"])
    (tmp_path / "datalist.csv").write_text("image,label\na.png,2\n")
    with pytest.raises(DataError, match=r"datalist.csv, line 2: label '2' is neither"):
        load_datalists(tmp_path, ["x", "y"])
    (tmp_path / "datalist.csv").write_text("path,class\na.png,0\n")
    with pytest.raises(DataError, match=r"datalist.csv: needs columns image,label"):
        load_datalists(tmp_path, ["x", "y"])


def test_json_datalist(tmp_path):
    make_class_tree(tmp_path / "imgs", {"a": 6, "b": 6})
    entries = [{"image": f"imgs/{c}/img{i}.png", "label": c} for c in "ab" for i in range(6)]
    datalist = {"name": "demo", "training": entries[:4] + entries[6:10], "validation": entries[4:6] + entries[10:12]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    splits = load_datalists(tmp_path, ["a", "b"])
    assert {s: len(v) for s, v in splits.items()} == {"train": 7, "val": 4, "test": 1}
    datalist["test"] = []
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(DataError, match="the 'test' split has no images"):
        load_datalists(tmp_path, ["a", "b"])


@pytest.mark.parametrize("content", ["image,label\n", "image,label,split\r\n\r\n", ""])
def test_datalist_without_rows(tmp_path, content):
    """A header-only (or empty) datalist.csv and an empty datalist.json: one line naming the file and what to do."""
    (tmp_path / "datalist.csv").write_text(content)
    expected = "lists no images" if content else "needs columns image,label"
    with pytest.raises(DataError, match=expected) as info:
        load_datalists(tmp_path, ["N", "P"])
    assert str(info.value).startswith(str(tmp_path / "datalist.csv")) and "\n" not in str(info.value)
    (tmp_path / "datalist.csv").unlink()
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [], "validation": []}))
    with pytest.raises(DataError, match="datalist.json: lists no images"):
        load_datalists(tmp_path, ["N", "P"])


def test_datalist_bad_rows(tmp_path):
    make_class_tree(tmp_path / "imgs", {"n": 2})
    (tmp_path / "datalist.csv").write_text("image,label,group\nimgs/n/img0.png,N,a\nimgs/n/img1.png\n")
    with pytest.raises(DataError, match=r"datalist.csv, line 3: the image or the label is missing"):
        load_datalists(tmp_path, ["N", "P"])
    (tmp_path / "datalist.csv").write_bytes("image,label\nimgs/n/\xe9.png,N\n".encode("latin-1"))
    with pytest.raises(DataError, match="datalist.csv: not a readable UTF-8 CSV file"):
        load_datalists(tmp_path, ["N", "P"])
