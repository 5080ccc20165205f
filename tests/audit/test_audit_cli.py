"""``python -m medbundle.audit``: the report's files, their content on a small made-up pair of data sets with a
duplicate across them, a leak across splits and a size confound; one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from audit_images import picture, resized, save, trimmed

from medbundle.audit.__main__ import main

FILES = {"audit.md", "summary.json", "images.csv", "duplicates.csv", "confounds.csv", "confound_checks.csv",
         "duplicate_pairs_1.png"}


@pytest.fixture
def data(tmp_path):
    """Two sources: ``one`` (train/test, classes at two sizes, a test image copied from train, masks) and ``two``
    (one image also in ``one``, trimmed and re-encoded)."""
    one, two = tmp_path / "one", tmp_path / "two"
    for i in range(8):
        save(one / "train" / "A" / f"a{i}.png", resized(picture(i), 200, 220))
        save(one / "train" / "B" / f"b{i}.png", resized(picture(20 + i), 300, 280))
        save(one / "train" / "A" / "masks" / f"a{i}.png", resized(picture(i), 200, 220))
    save(one / "test" / "A" / "leak.jpg", resized(picture(3), 150, 150), quality=85)
    for i in range(4):
        save(two / "X" / f"x{i}.png", picture(40 + i))
    save(two / "X" / "copy.jpg", trimmed(resized(picture(5), 200, 220), 0.05, 0.0, 0.03, 0.03), quality=85)
    return one, two


def test_the_cli_writes_the_report(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(data[0]), str(data[1]), "--output_dir", str(out), "--no_progress"]) == 0
    assert FILES <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left

    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert len(images) == 16 + 1 + 5  # masks skipped
    assert not images["path"].str.contains("masks").any()
    assert set(images["group"]) == {"one/train/A", "one/train/B", "one/test/A", "two/X"}

    pairs = pd.read_csv(out / "duplicates.csv")
    assert {"a", "b", "kind", "distance", "same_split", "same_source", "same_class", "relation",
            "cluster"} <= set(pairs.columns)
    by_name = {frozenset((p.a.rsplit("/", 1)[1], p.b.rsplit("/", 1)[1])): p for p in pairs.itertuples()}
    leak = by_name[frozenset(("a3.png", "leak.jpg"))]
    assert leak.relation == "across_splits" and leak.same_class and not leak.same_split
    copy = by_name[frozenset(("a5.png", "copy.jpg"))]
    assert copy.relation == "across_sources" and not copy.same_source and copy.kind == "near_crop"
    assert len(pairs) == 2

    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 22
    assert summary["sources"]["one"]["mask_images_skipped"] == 8
    assert summary["duplicates"]["by_relation"] == {"across_splits": 1, "across_sources": 1}
    flagged = [c for c in summary["confound_checks"] if c["flagged"]]
    assert {(c["predicts"], c["source"], c["features"]) for c in flagged} >= {("class", "one", "metadata")}
    findings = "\n".join(summary["findings"])
    assert "1 of 1 images of one/test/A are also in one/train/A (another split: a leak)" in findings
    assert "metadata alone predict the class of one" in findings

    report = (out / "audit.md").read_text()
    assert report.startswith("# Data audit") and "another split: a leak" in report
    assert str(out / "audit.md") in capsys.readouterr().out


def test_a_rerun_leaves_no_stale_pictures(data, tmp_path):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "duplicate_pairs_9.png").write_bytes(b"old")
    assert main([str(data[0]), "--output_dir", str(out), "--no_progress"]) == 0
    assert sorted(p.name for p in out.glob("duplicate_pairs_*.png")) == ["duplicate_pairs_1.png"]


def test_a_bad_folder_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--output_dir", str(tmp_path / "out"), "--no_progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {tmp_path / 'nope'}: no such folder.")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_python_m_medbundle_audit(data, tmp_path):
    """The module runs as a command: help, then a bad folder, as a user types them."""
    help_text = subprocess.run([sys.executable, "-m", "medbundle.audit", "--help"], capture_output=True, text=True,
                               timeout=300)
    assert help_text.returncode == 0 and "--output_dir" in help_text.stdout and "confounds" in help_text.stdout
    bad = subprocess.run([sys.executable, "-m", "medbundle.audit", str(tmp_path / "nope")], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (f"error: {tmp_path / 'nope'}: no such folder. Pass an existing "
                                                   "folder of images (class folders, split folders or images "
                                                   "directly inside).")
