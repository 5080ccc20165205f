"""medbundle.runs.record: what run.json holds, that it is written only by a run that really started, read as data."""

from __future__ import annotations

import json
import os

import pytest
from conftest import BUNDLES

from medbundle.handlers import RunRecord
from medbundle.runs import RunRecordError, data_fingerprint, plain_value, read_record, record_run

TRAIN = str(BUNDLES / "ct_infection" / "configs" / "train.json")
SMALL = ["--spatial_size", "[32, 32]", "--network_def#features", "[8, 16, 16, 32, 32]"]


def _argv(out, *extra):
    return ["run", "--config_file", TRAIN, "--output_dir", str(out), *SMALL, *extra]


def test_record_holds_what_rebuilds_the_run(tmp_path):
    items = {"train": [{"image": TRAIN, "label": 1, "id": "a"}], "val": [], "test": []}
    record = record_run(tmp_path, items, argv=_argv(tmp_path, "--epochs", "3"))
    on_disk = json.loads((tmp_path / "run.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    settings = on_disk["settings"]
    assert settings["bundle_name"] == "ct_infection" and settings["spatial_size"] == [32, 32]
    assert settings["class_names"] == ["no_infection", "mild_infection", "severe_infection"]
    assert settings["data_key"] == "data" and settings["label_key"] == "label"
    assert settings["network_def"] == {"_target_": "medbundle.networks.FiveBlockCNN", "in_channels": 1,
                                       "num_classes": 3, "features": [8, 16, 16, 32, 32], "dense": 512,
                                       "dropout": 0.0, "head_dropout": 0.3, "pooled_size": 1, "batch_norm": True}
    assert on_disk["overrides"]["epochs"] == 3 and on_disk["config_file"] == [TRAIN]
    assert on_disk["config"]["spatial_size"] == [32, 32] and on_disk["config"]["epochs"] == 3  # merged raw config
    assert on_disk["config"]["network_def"]["num_classes"] == "@num_classes"  # raw: kept, never evaluated
    assert set(on_disk["versions"]) >= {"medbundle", "monai", "torch", "numpy"} and on_disk["versions"]["torch"]
    assert on_disk["data"]["items"] == {"train": 1, "val": 0, "test": 0} and len(on_disk["data"]["sha256"]) == 64
    assert "mtime" in on_disk["data"]["method"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*tmp"))


def test_record_only_from_monai_bundle_run_and_rank_zero(tmp_path, monkeypatch):
    assert record_run(tmp_path, argv=["--config_file", TRAIN]) is None
    monkeypatch.setattr("medbundle.runs.record.is_rank_zero", lambda: False)
    assert record_run(tmp_path, argv=_argv(tmp_path)) is None
    assert not (tmp_path / "run.json").exists()


def test_fingerprint_changes_with_labels_splits_and_files(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"x")
    items = {"train": [{"image": str(f), "label": 0, "id": "a"}], "test": []}
    base = data_fingerprint(items)["sha256"]
    assert data_fingerprint({"test": [], "train": list(items["train"])})["sha256"] == base  # order does not matter
    assert data_fingerprint({"train": [{**items["train"][0], "label": 1}], "test": []})["sha256"] != base
    assert data_fingerprint({"train": [], "test": items["train"]})["sha256"] != base
    f.write_bytes(b"xy")
    assert data_fingerprint(items)["sha256"] != base


def test_record_handler_writes_only_when_the_trainer_starts(tmp_path, monkeypatch):
    from ignite.engine import Engine, Events

    monkeypatch.setattr("sys.argv", ["monai.bundle", *_argv(tmp_path)])
    (tmp_path / "run.json").write_text('{"old": true}')
    engine = Engine(lambda e, b: None)
    RunRecord(tmp_path, {"train": []}).attach(engine)

    @engine.on(Events.STARTED)
    def fail_at_start(_):  # attached after the record: it runs once the record is written
        assert read_record(tmp_path)["settings"]["spatial_size"] == [32, 32]

    assert json.loads((tmp_path / "run.json").read_text()) == {"old": True}  # attaching writes nothing
    engine.run([0], max_epochs=1)
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["bundle_name"] == "ct_infection"


def test_failed_start_up_keeps_the_old_record(tmp_path, monkeypatch):
    from ignite.engine import Engine, Events

    monkeypatch.setattr("sys.argv", ["monai.bundle", *_argv(tmp_path)])
    (tmp_path / "run.json").write_text('{"old": true}')
    engine = Engine(lambda e, b: None)

    @engine.on(Events.STARTED)
    def resume_fails(_):  # e.g. Resume with a broken checkpoint, attached before the record
        raise RuntimeError("start-up failed")

    RunRecord(tmp_path).attach(engine)
    with pytest.raises(RuntimeError, match="start-up failed"):
        engine.run([0], max_epochs=1)
    assert json.loads((tmp_path / "run.json").read_text()) == {"old": True}


@pytest.mark.parametrize("value", ["$__import__('os').system('touch X')", "@network", "%train.json#x",
                                   ["ok", "$1+1"], {"a": "@b"}])
def test_plain_value_refuses_config_syntax(value):
    with pytest.raises(RunRecordError, match="never evaluated"):
        plain_value(value, "run.json: settings.x")


def test_plain_value_keeps_data():
    data = {"a": [1, 2.5, None, True, "path/to/x"], "b": "mail@host"}
    assert plain_value(data, "x") == data


def test_read_record_errors_are_one_line(tmp_path):
    with pytest.raises(RunRecordError, match="is not a medbundle training run") as info:
        read_record(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunRecordError, match="not a readable run record"):
        read_record(tmp_path)
    (tmp_path / "run.json").write_text('{"config_file": [], "overrides": {}}')  # a record of an older medbundle
    with pytest.raises(RunRecordError, match="no recorded settings"):
        read_record(tmp_path)
    assert read_record(tmp_path, required=False) is None
    assert "\n" not in str(info.value)
    assert os.path.isdir(tmp_path)
