"""medbundle.runs.rebuild and medbundle.compare: a run rebuilds its network and preprocessing from its record,
a command contradicting the record stops, and nothing in a run folder is ever evaluated."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import BUNDLES

from medbundle import compare
from medbundle.networks import FiveBlockCNN
from medbundle.runs import RunRecordError, check_run, recorded, recorded_network, record_run

CONFIGS = BUNDLES / "ct_infection" / "configs"
SMALL = ["--spatial_size", "[32, 32]", "--network_def#features", "[8, 16, 16, 32, 32]"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from medbundle.data import make_ct_demo

    return make_ct_demo(tmp_path_factory.mktemp("demo"), n_train=12, n_val=6, n_test=6, size=32, seed=1)


def make_run(folder, demo, *extra) -> dict:
    """A run folder as a 32-px training leaves it: its record and an (untrained) model.pt."""
    argv = ["run", "--config_file", str(CONFIGS / "train.json"), "--output_dir", str(folder),
            "--dataset_dir", str(demo), *SMALL, *extra]
    folder.mkdir(parents=True, exist_ok=True)
    record = record_run(folder, argv=argv)
    (folder / "models").mkdir(exist_ok=True)
    torch.save(recorded_network(folder).state_dict(), folder / "models" / "model.pt")
    return record


def edit_record(folder, change):
    record = json.loads((folder / "run.json").read_text())
    change(record)
    (folder / "run.json").write_text(json.dumps(record))


def test_recorded_settings_replace_the_defaults(tmp_path, demo):
    make_run(tmp_path, demo)
    assert recorded(tmp_path, "spatial_size", [64, 64]) == [32, 32]
    assert recorded(tmp_path / "no_run", "spatial_size", [64, 64]) == [64, 64]
    with pytest.raises(RunRecordError, match="not recorded"):
        recorded(tmp_path / "no_run", "spatial_size")
    net = recorded_network(tmp_path)
    assert isinstance(net, FiveBlockCNN) and net(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    default = torch.nn.Linear(1, 1)
    assert recorded_network(tmp_path / "no_run", default) is default


@pytest.mark.parametrize("argv_extra, values, key", [
    ([], {"spatial_size": [64, 64]}, "spatial_size"),
    ([], {"class_names": ["a", "b", "c"]}, "class_names"),
    ([], {"bundle_name": "alzheimer_mri"}, "bundle_name"),
    (["--network_def#features", "[16, 16, 16, 32, 32]"], {}, "network_def#features"),
    (["--network_def#dense", "64"], {}, "network_def#dense"),
])
def test_contradicting_the_record_is_an_error_naming_key_values_and_folder(tmp_path, demo, argv_extra, values, key):
    make_run(tmp_path, demo)
    argv = ["run", "--config_file", str(CONFIGS / "inference.json"), "--output_dir", str(tmp_path), *argv_extra]
    with pytest.raises(RunRecordError) as info:
        check_run(tmp_path, values, argv=argv)
    message = str(info.value)
    assert key in message and str(tmp_path) in message and "\n" not in message
    trained = {"spatial_size": "[32, 32]", "network_def#features": "[8, 16, 16, 32, 32]", "network_def#dense": "512",
               "bundle_name": "ct_infection", "class_names": "no_infection"}[key]
    assert trained in message


def test_agreeing_values_and_an_overlay_matching_the_record_pass(tmp_path, demo):
    make_run(tmp_path, demo)
    argv = ["run", "--config_file", str(CONFIGS / "inference.json"), "--output_dir", str(tmp_path), *SMALL]
    assert check_run(tmp_path, {"spatial_size": (32, 32), "bundle_name": "ct_infection"}, argv=argv) is not None
    full_size = str(CONFIGS / "full_size.json")  # an overlay giving other network arguments: a contradiction
    argv = ["run", "--config_file", f"['{CONFIGS / 'inference.json'}','{full_size}']", "--output_dir", str(tmp_path)]
    with pytest.raises(RunRecordError, match="network_def#features"):
        check_run(tmp_path, {}, argv=argv)
    assert check_run(tmp_path / "no_run", {"spatial_size": [64, 64]}) is None


def test_compare_rebuilds_the_run_from_its_record(tmp_path, demo):
    make_run(tmp_path / "run", demo)
    rows = compare.compare([tmp_path / "run"], tmp_path / "cmp", device="cpu")
    assert rows[0]["test_images"] == 6 and rows[0]["parameters"] == sum(
        p.numel() for p in recorded_network(tmp_path / "run").parameters())
    model = compare.RunModel(tmp_path / "run", device="cpu")
    assert list(model.preprocessing.transforms[2].resizer.spatial_size) == [32, 32]


def test_malicious_run_json_runs_nothing(tmp_path, demo):
    """Expressions in the overrides, the raw config or the config files a record names are never evaluated."""
    folder = tmp_path / "run"
    make_run(folder, demo)
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps({"imports": [f"$__import__('os').system('touch {tmp_path / 'FROM_FILE'}')"]}))

    def poison(record):
        record["overrides"]["epochs"] = f"$__import__('os').system('touch {tmp_path / 'FROM_OVERRIDE'}')"
        record["config"]["imports"].append(f"$__import__('os').system('touch {tmp_path / 'FROM_CONFIG'}')")
        record["config_file"] = [str(evil)]

    edit_record(folder, poison)
    compare.compare([folder], tmp_path / "cmp", device="cpu")
    assert recorded(folder, "spatial_size") == [32, 32]
    assert not list(tmp_path.glob("FROM_*")), "a record's content was evaluated"


@pytest.mark.parametrize("where, value", [
    (("settings", "spatial_size"), "$__import__('os').system('touch {x}')"),
    (("settings", "data_key"), "@network"),
    (("settings", "network_def", "features"), "$__import__('os').system('touch {x}')"),
    (("settings", "network_def", "_target_"), "os.system"),
    (("settings", "datalists", "dataset_dir"), {"_target_": "os.system", "command": "touch {x}"}),
    (("settings", "datalists", "class_aliases"), {"x": {"_target_": "os.system", "command": "touch {x}"}}),
    (("settings", "datalists", "finding_map"), {"$__import__('os').system('touch {x}')": "A"}),
    (("settings", "datalists", "row_filter"), {"view": ["$__import__('os').system('touch {x}')"]}),
    (("settings", "bundle_name"), "../../evil"),
])
def test_code_in_a_run_record_is_refused_with_one_line(tmp_path, demo, where, value):
    folder = tmp_path / "run"
    make_run(folder, demo)
    marker = tmp_path / "EVALUATED"
    value = json.loads(json.dumps(value).replace("{x}", str(marker)))

    def poison(record):
        node = record
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    edit_record(folder, poison)
    code = compare.main([str(folder), "--output_dir", str(tmp_path / "cmp"), "--device", "cpu"])
    assert code == 2 and not marker.exists()
    with pytest.raises(RunRecordError) as info:
        compare.RunModel(folder, device="cpu")
    assert "\n" not in str(info.value) and "run.json" in str(info.value)
    if where[1] in ("spatial_size", "network_def"):  # what inference.json / evaluate.json read
        with pytest.raises(RunRecordError):
            recorded(folder, "spatial_size") if where[1] == "spatial_size" else recorded_network(folder)
    assert not marker.exists()
