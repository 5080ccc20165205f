"""medbundle.runs: class names from the bundle metadata, finding the bundle root, required files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import REPO

from medbundle.data.demo import CT_CLASSES
from medbundle.runs import class_names, find_bundle_root, require_file


def test_class_names_integer_order():
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": {
        "10": "ten", "2": "two", "0": "zero", "1": "one", "3": "three", "4": "four",
        "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"}}}}}
    assert class_names(meta) == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@pytest.mark.parametrize("meta", [{}, {"network_data_format": {"outputs": {"pred": {}}}}, None,
                                  {"network_data_format": {"outputs": {}}}])
def test_class_names_missing_channel_def(meta):
    with pytest.raises(ValueError, match=r"configs/metadata\.json"):
        class_names(meta)


def test_class_names_of_the_bundle():
    import json

    meta = json.loads((REPO / "bundles" / "ct_infection" / "configs" / "metadata.json").read_text())
    assert class_names(meta) == list(CT_CLASSES)


def test_find_bundle_root(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    root = find_bundle_root("ct_infection")
    assert Path(root) == REPO / "bundles" / "ct_infection"
    assert (Path(root) / "configs").is_dir()
    with pytest.raises(FileNotFoundError, match="no_such_bundle"):
        find_bundle_root("no_such_bundle")


def test_find_bundle_root_from_config_file(monkeypatch, tmp_path):
    cfg = tmp_path / "elsewhere" / "ct_infection" / "configs"
    cfg.mkdir(parents=True)
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "--config_file", str(cfg / "train.json")])
    assert Path(find_bundle_root("ct_infection")) == (tmp_path / "elsewhere" / "ct_infection").resolve()
    listed = f"['{cfg / 'train.json'}','{cfg / 'evaluate.json'}']"
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", f"--config_file={listed}"])
    assert Path(find_bundle_root("ct_infection")) == (tmp_path / "elsewhere" / "ct_infection").resolve()


def test_require_file(tmp_path):
    f = tmp_path / "model.pt"
    with pytest.raises(FileNotFoundError, match="run the train config first") as info:
        require_file(str(f), "trained model", "run the train config first")
    assert str(f) in str(info.value) and "trained model" in str(info.value)
    f.write_bytes(b"x")
    assert require_file(str(f), "trained model", "hint") == str(f)
