"""medbundle.data.splits: stratified and grouped (by subject) splits."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from helpers.data import CLASSES
from PIL import Image

from medbundle.data import grouped_split
from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError
from medbundle.data.splits import stratified_split


def test_stratified_split():
    items = [{"id": str(i), "label": int(i < 30)} for i in range(100)]
    parts = stratified_split(items, {"val": 0.1, "test": 0.2}, seed=3)
    assert {k: len(v) for k, v in parts.items()} == {"train": 70, "val": 10, "test": 20}
    assert sum(i["label"] for i in parts["test"]) == 6
    assert sorted(i["id"] for p in parts.values() for i in p) == sorted(i["id"] for i in items)
    assert stratified_split(items, {"val": 0.1, "test": 0.2}, seed=3) == parts
    tiny = [{"id": str(i), "label": int(i == 0)} for i in range(6)]  # a class of one: unstratified fallback
    assert sum(len(p) for p in stratified_split(tiny, {"val": 0.2}, seed=0).values()) == 6
    with pytest.raises(ValueError):
        stratified_split(items, {"val": 0.6, "test": 0.5}, seed=0)


def test_grouped_split_keeps_subjects_together_and_is_reported(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    items = [{"image": f"s{g}_{k}", "label": g % 4, "group": f"sub-{g}", "id": f"sub-{g}_slice-{k}"}
             for g in range(40) for k in range(5)]
    parts = grouped_split(items, {"val": 0.15, "test": 0.15}, seed=3)
    groups = {s: {it["group"] for it in part} for s, part in parts.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert sum(len(p) for p in parts.values()) == 200 and 20 <= len(parts["test"]) <= 45
    assert {it["label"] for it in parts["test"]} == {0, 1, 2, 3}  # stratified as well
    # through load_datalists: a datalist.csv with a group column, and a pattern on file names
    root = tmp_path / "csv"
    root.mkdir()
    rows = ["image,label,group"]
    for g in range(20):
        for k in range(3):
            name = f"sub-{g:02d}_slice-{k}.png"
            Image.fromarray(np.full((8, 8), g, np.uint8)).save(root / name)
            rows.append(f"{name},{CLASSES[g % 4]},sub-{g:02d}")
    (root / "datalist.csv").write_text("\n".join(rows) + "\n")
    lists = load_datalists(root, CLASSES, output_dir=tmp_path / "run")
    seen = [{it["group"] for it in lists[s]} for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert "grouped by subject (20 groups)" in caplog.text
    assert json.loads((tmp_path / "run" / "split.json").read_text())["method"].startswith("grouped by subject")
    (root / "datalist.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")  # drop the group column
    caplog.clear()
    lists = load_datalists(root, CLASSES, group_pattern=r"sub-\d+")
    assert all(it["group"] == it["id"][:6] for s in lists.values() for it in s)
    assert "grouped by subject (20 groups)" in caplog.text
    caplog.clear()
    load_datalists(root, CLASSES, group_pattern=r"patient-\d+")
    assert "matches no image id" in caplog.text and "stratified by class (no group key)" in caplog.text
    (root / "other.png").write_bytes((root / "sub-00_slice-0.png").read_bytes())
    with open(root / "datalist.csv", "a") as f:
        f.write("other.png,NonDemented\n")
    with pytest.raises(DataError, match=r"group_pattern 'sub-\\\\d\+' matches 60 of 61 image ids"):
        load_datalists(root, CLASSES, group_pattern=r"sub-\d+")
