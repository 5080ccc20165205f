"""The subject-clean check of a split and the "figures may be optimistic" warning it puts on evaluation reports."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from medbundle.data import load_datalists
from medbundle.data.split_check import OPTIMISTIC, check_split, read_split_check, record_split_check, split_warning
from medbundle.report import write_classification_report


def _items(groups, prefix):
    return [{"id": f"{prefix}{i}", "image": f"{prefix}{i}.png", "label": 0, **({"group": g} if g else {})}
            for i, g in enumerate(groups)]


def test_clean_only_when_every_image_is_grouped_and_no_group_crosses():
    assert check_split({"train": _items("aab", "t"), "test": _items("c", "s")})["subject_clean"]
    crossing = check_split({"train": _items("aab", "t"), "test": _items("b", "s")})
    assert not crossing["subject_clean"] and "1 subject or near-duplicate groups" in crossing["reason"]
    ungrouped = check_split({"train": _items(["a", None], "t"), "test": _items("c", "s")})
    assert not ungrouped["subject_clean"] and "1 of 3 images have no subject key" in ungrouped["reason"]


def test_a_reused_grouped_split_is_checked_with_the_groups_it_was_made_by(tmp_path):
    from medbundle.data.splits import _make_missing_splits

    def fresh():  # items as a later command loads them: near-duplicate groups are not recomputed on reuse
        return {"train": [{"id": f"i{k}", "image": f"i{k}.png", "label": k % 2} for k in range(40)]}

    def group(parts):
        for item in parts["train"]:
            item["group"] = f"g{int(item['id'][1:]) // 4}"

    fractions = {"val": 0.2, "test": 0.2}
    made, how = _make_missing_splits(fresh(), fractions, 0, tmp_path, tmp_path, near_duplicates=True, group=group)
    assert how.startswith("made from the training data: grouped by")
    assert record_split_check(tmp_path, made, how)["subject_clean"]
    saved = json.loads((tmp_path / "split.json").read_text())
    assert len(saved["groups"]) == 40 and saved["groups"]["i5"] == "g1"

    reused, how = _make_missing_splits(fresh(), fractions, 0, tmp_path, tmp_path, near_duplicates=True, group=None)
    assert how.startswith("reused from") and {s: len(v) for s, v in reused.items()} == {s: len(v) for s, v in made.items()}
    assert record_split_check(tmp_path, reused, how)["subject_clean"]

    # a split.json of an earlier version records no groups: not known to be clean, and the warning says so
    (tmp_path / "split.json").write_text(json.dumps({k: v for k, v in saved.items() if k != "groups"}))
    old, how = _make_missing_splits(fresh(), fractions, 0, tmp_path, tmp_path, near_duplicates=True, group=None)
    record = record_split_check(tmp_path, old, how)
    assert how.startswith("reused from") and not record["subject_clean"] and "no subject key" in record["reason"]
    assert read_split_check(tmp_path) == record  # the last check is the record


def test_record_logs_and_warning_reads_it(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="medbundle.data"):
        record_split_check(tmp_path, {"train": _items([None], "t"), "test": _items([None], "s")}, "taken from the data")
    assert any(OPTIMISTIC.upper() in r.getMessage() for r in caplog.records)
    assert split_warning(tmp_path / "split_check.json").startswith(OPTIMISTIC.upper())
    assert "no split check recorded" in split_warning(tmp_path / "elsewhere" / "split_check.json")
    record_split_check(tmp_path, {"train": _items("a", "t"), "test": _items("b", "s")}, "grouped")
    assert split_warning(tmp_path) is None


def test_report_opens_with_the_warning(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    probs = rng.dirichlet([1, 1], size=20)
    m = write_classification_report(tmp_path / "warned", y, probs, ["a", "b"], warning="FIGURES MAY BE OPTIMISTIC: x")
    text = (tmp_path / "warned" / "classification_report.txt").read_text()
    assert text.startswith("!" * 100) and "FIGURES MAY BE OPTIMISTIC: x" in text.splitlines()[1]
    assert json.loads((tmp_path / "warned" / "metrics.json").read_text())["warning"] == m["warning"]
    write_classification_report(tmp_path / "clean", y, probs, ["a", "b"])
    assert not (tmp_path / "clean" / "classification_report.txt").read_text().startswith("!")
    assert "warning" not in json.loads((tmp_path / "clean" / "metrics.json").read_text())


def _slices(folder, n_subjects=6, n_slices=5, seed=0):
    """Class folders of 'MRI slices' numbered like the Kaggle release: file k is slice k // n_subjects of subject
    k % n_subjects (the subjects interleave), adjacent slices of one subject near-identical."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls in ("A", "B"):
        (folder / cls).mkdir(parents=True)
        bases = [rng.random((64, 64)) for _ in range(n_subjects)]
        for k in range(n_subjects * n_slices):
            s, z = k % n_subjects, k // n_subjects
            img = bases[s] * (1 + 0.01 * z) + 0.002 * rng.random((64, 64))
            Image.fromarray(np.clip(img * 200, 0, 255).astype(np.uint8)).save(folder / cls / f"{cls.lower()}{k}.png")


@pytest.mark.slow
def test_near_duplicate_grouping_keeps_subjects_whole_and_the_split_clean(tmp_path):
    """Slices named without a subject: with near_duplicates the split keeps each subject's slices on one side and
    is recorded clean; without, subjects cross the split and the record says the figures may be optimistic."""
    _slices(tmp_path / "data")
    grouped = load_datalists(tmp_path / "data", ["A", "B"], output_dir=tmp_path / "g", near_duplicates=True,
                             val_fraction=0.25, test_fraction=0.25, check=False)
    side = {}
    for name, part in grouped.items():
        for item in part:
            cls, k = item["id"].split("/")[-2], int("".join(c for c in item["id"].split("/")[-1] if c.isdigit()))
            side.setdefault((cls, k % 6), set()).add(name)
    assert len(side) == 12 and all(len(s) == 1 for s in side.values())
    assert read_split_check(tmp_path / "g")["subject_clean"]
    load_datalists(tmp_path / "data", ["A", "B"], output_dir=tmp_path / "r", near_duplicates=False,
                   val_fraction=0.25, test_fraction=0.25, check=False)
    assert split_warning(tmp_path / "r").startswith(OPTIMISTIC.upper())
