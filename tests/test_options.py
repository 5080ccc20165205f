"""Command-line options: booleans that mean what they say (components and the start-up check), unknown keys, values
out of range, and the check's place as the first ``initialize`` item of every bundle command."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from medbundle.options import OptionError, VALUE_RULES, as_bool, check_command_line, check_overrides

REPO = Path(__file__).resolve().parents[1]
TRUE_WORDS = [True, 1, "true", "True", "TRUE", "yes", "Yes", "on", "1"]
FALSE_WORDS = [False, 0, "false", "False", "FALSE", "no", "No", "off", "0"]
NOT_BOOLEANS = ["maybe", "", "2", 2, -1, 0.5, None, "ture", [True]]


def _merged(*files: str) -> dict:
    from monai.bundle import ConfigParser

    return ConfigParser.load_config_files([str(REPO / f) for f in files])


@pytest.mark.parametrize("value", TRUE_WORDS)
def test_as_bool_true(value):
    assert as_bool(value, "resume") is True


@pytest.mark.parametrize("value", FALSE_WORDS)
def test_as_bool_false(value):
    assert as_bool(value, "resume") is False


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_as_bool_rejects_anything_else_naming_the_key(value):
    with pytest.raises(OptionError, match="resume.*not a boolean.*true or false"):
        as_bool(value, "resume")


# --- (a) components coerce their own boolean arguments ---------------------------------------------------------


def test_resume_false_string_is_off(tmp_path):
    from medbundle.handlers import Resume

    assert Resume(ckpt_dir=str(tmp_path), load_dict={}, enabled="false").enabled is False
    assert Resume(ckpt_dir=str(tmp_path), load_dict={}, enabled="yes").enabled is True
    with pytest.raises(OptionError, match="resume"):
        Resume(ckpt_dir=str(tmp_path), load_dict={}, enabled="maybe")


def test_autocast_inferer_reads_amp_and_channels_last_words():
    from medbundle.inferers import AutocastInferer

    inferer = AutocastInferer(amp="false", channels_last="0")
    assert inferer.amp is False and inferer.channels_last is False
    assert AutocastInferer(amp="auto").amp == "auto"
    assert AutocastInferer(amp="True").amp is True
    net = torch.nn.Conv2d(1, 1, 1)
    out = inferer(torch.rand(1, 1, 4, 4), net)
    assert out.dtype == torch.float32
    with pytest.raises(OptionError, match="amp"):
        AutocastInferer(amp="sure")
    with pytest.raises(OptionError, match="channels_last"):
        AutocastInferer(channels_last="nope")


def test_prepare_network_channels_last_false_string_keeps_the_layout():
    from medbundle.runtime import prepare_network

    net = prepare_network(torch.nn.Conv2d(2, 4, 3), "cpu", "false")
    assert net.weight.is_contiguous()
    net = prepare_network(torch.nn.Conv2d(2, 4, 3), "cpu", "true")
    assert net.weight.is_contiguous(memory_format=torch.channels_last) and not net.weight.is_contiguous()
    with pytest.raises(OptionError, match="channels_last"):
        prepare_network(torch.nn.Conv2d(2, 4, 3), "cpu", "maybe")


@pytest.mark.parametrize("word", ["false", "False", "no", "0", 0, False])
def test_five_block_cnn_batch_norm_false_words_build_no_batch_norm(word):
    from medbundle.networks import FiveBlockCNN

    net = FiveBlockCNN(num_classes=3, features=(4, 4, 4, 4, 4), dense=8, batch_norm=word)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in FiveBlockCNN(features=(4,) * 5, batch_norm="true").modules())
    with pytest.raises(OptionError, match="batch_norm"):
        FiveBlockCNN(features=(4,) * 5, batch_norm="maybe")


def test_explanation_report_restrict_words(tmp_path):
    from medbundle.handlers import ExplanationReport

    assert ExplanationReport(str(tmp_path), ["a", "b"], restrict="false").restrict is False
    assert ExplanationReport(str(tmp_path), ["a", "b"], restrict="1").restrict is True
    with pytest.raises(OptionError, match="restrict_to_anatomy"):
        ExplanationReport(str(tmp_path), ["a", "b"], restrict="maybe")


# --- (b) the start-up check: keys ----------------------------------------------------------------------------


def test_unknown_key_names_the_close_match():
    config = _merged("bundles/ct_infection/configs/train.json")
    with pytest.raises(OptionError, match=r"unknown key 'epohcs'.*did you mean 'epochs'\?"):
        check_overrides(config, {"epohcs": 3}, ["train.json"])


def test_unknown_nested_key_names_the_sibling():
    config = _merged("bundles/ct_infection/configs/train.json")
    with pytest.raises(OptionError, match=r"'network_def#batch_normm'.*did you mean 'network_def#batch_norm'"):
        check_overrides(config, {"network_def#batch_normm": False})


def test_unknown_key_without_a_close_match_says_where_to_look():
    config = _merged("bundles/ct_infection/configs/train.json")
    with pytest.raises(OptionError, match=r"unknown key 'zzzqqq'.*no such key in train.json.*docs/README.md"):
        check_overrides(config, {"zzzqqq": 1}, ["train.json"])


def test_keys_of_the_wrong_config_are_unknown():
    """``--resume`` means nothing to inference.json: an error, not a silently ignored option."""
    config = _merged("bundles/ct_infection/configs/inference.json")
    with pytest.raises(OptionError, match="unknown key 'resume'"):
        check_overrides(config, {"resume": True})


def test_known_paths_monai_options_and_references_are_accepted():
    config = _merged("bundles/ct_infection/configs/train.json", "configs/smoke.json")
    config["_meta_"] = json.loads((REPO / "bundles/ct_infection/configs/metadata.json").read_text())
    config["run"] = ["$@train#trainer.add_event_handler(1, @kill_at)"]  # a key left to the command line
    overrides = {"network_def#features": [8, 16], "preprocessing#1#lower": 1.0, "train#handlers#0#enabled": True,
                 "preprocessing::1::upper": 99.0, "_meta_#version": "x", "tracking": "mlflow",
                 "save_execute_config": False, "logging_file": "x.conf", "meta_file": "m.json", "kill_at": 9}
    check_overrides(config, overrides)
    with pytest.raises(OptionError, match="unknown key 'preprocessing#9#lower'"):
        check_overrides(config, {"preprocessing#9#lower": 1.0})


def test_monai_run_options_are_all_allowed():
    """Every named parameter of ``monai.bundle run`` (and of the workflow it creates) is an option, not a key."""
    from monai.bundle import ConfigWorkflow
    from monai.bundle.scripts import create_workflow, run

    from medbundle.options import _MONAI_ARGS

    names = set()
    for fn in (run, create_workflow, ConfigWorkflow.__init__):
        names |= {p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
    assert names <= _MONAI_ARGS, names - _MONAI_ARGS


# --- (b) the start-up check: booleans -------------------------------------------------------------------------


def _boolean_keys(config, prefix=""):
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else []
    for k, v in items:
        key = f"{prefix}#{k}" if prefix else str(k)
        if isinstance(v, bool):
            yield key
        yield from _boolean_keys(v, key)


BUNDLE_COMMANDS = [
    ("ct_infection", ["train.json"]), ("ct_infection", ["train.json", "multi_gpu_train.json"]),
    ("ct_infection", ["train.json", "full_size.json"]), ("ct_infection", ["train.json", "evaluate.json"]),
    ("ct_infection", ["inference.json"]), ("ct_infection", ["inference.json", "explain.json"]),
    ("alzheimer_mri", ["train.json"]), ("alzheimer_mri", ["train.json", "baseline.json"]),
    ("alzheimer_mri", ["train.json", "resnet50.json"]), ("alzheimer_mri", ["inference.json", "explain.json"]),
]


@pytest.mark.parametrize("task,names", BUNDLE_COMMANDS, ids=lambda x: "+".join(x) if isinstance(x, list) else x)
def test_every_boolean_key_of_every_bundle_takes_every_boolean_word(task, names):
    config = _merged(*[f"bundles/{task}/configs/{n}" for n in names])
    keys = list(_boolean_keys(config))
    assert "channels_last" in keys
    for key in keys:
        for word in TRUE_WORDS + FALSE_WORDS:
            assert check_overrides(config, {key: word}) == {key: word in TRUE_WORDS}, (key, word)
        with pytest.raises(OptionError, match=f"--{key} 'maybe': not a boolean"):
            check_overrides(config, {key: "maybe"})


def test_resume_words_on_train():
    config = _merged("bundles/ct_infection/configs/train.json")
    assert check_overrides(config, {"resume": "false"}) == {"resume": False}
    assert check_overrides(config, {"resume": "yes", "channels_last": "0"}) == {"resume": True, "channels_last": False}
    with pytest.raises(OptionError, match="--resume 'maybe': not a boolean; pass true or false"):
        check_overrides(config, {"resume": "maybe"})


def test_amp_is_auto_or_a_boolean():
    config = _merged("bundles/ct_infection/configs/train.json")
    assert check_overrides(config, {"amp": "auto"}) == {}
    assert check_overrides(config, {"amp": "false"}) == {"amp": False}
    assert check_overrides(config, {"amp": True}) == {"amp": True}
    with pytest.raises(OptionError, match="--amp 'sure': not a boolean.* or auto"):
        check_overrides(config, {"amp": "sure"})


def test_boolean_expressions_and_disabled_switches():
    config = _merged("bundles/ct_infection/configs/train.json")
    assert check_overrides(config, {"demo_data": "no", "summary_writer#_disabled_": "true"}) == {
        "demo_data": False, "summary_writer#_disabled_": True}
    with pytest.raises(OptionError, match="demo_data"):
        check_overrides(config, {"demo_data": "perhaps"})


def test_expressions_and_references_are_not_checked():
    config = _merged("bundles/ct_infection/configs/train.json")
    assert check_overrides(config, {"resume": "$os.path.isdir('/x')", "epochs": "@seed", "device": "%x.json#d"}) == {}


# --- (b) the start-up check: values --------------------------------------------------------------------------


@pytest.mark.parametrize("key,value,message", [
    ("epochs", 0, "--epochs 0: the number of training epochs must be a whole number >= 1"),
    ("epochs", -3, "--epochs -3"),
    ("epochs", 2.5, "--epochs 2.5"),
    ("epochs", "ten", "--epochs 'ten'"),
    ("epochs", True, "--epochs True"),
    ("batch_size", 0, "--batch_size 0: the batch size must be a whole number >= 1"),
    ("val_interval", 0, "--val_interval 0"),
    ("num_workers", -1, "--num_workers -1"),
    ("precise_bn_batches", -1, "--precise_bn_batches -1"),
    ("spatial_size", [0, 0], r"--spatial_size \[0, 0\]: the image size must be two whole numbers > 0"),
    ("spatial_size", [64], r"--spatial_size \[64\]"),
    ("spatial_size", [64, 64, 64], r"--spatial_size \[64, 64, 64\]"),
    ("spatial_size", [64.5, 64], r"--spatial_size \[64.5, 64\]"),
    ("spatial_size", 64, "--spatial_size 64"),
    ("device", "gpu0", "--device 'gpu0': not a device; use auto, cpu, cuda or cuda:<index>"),
    ("checkpoint_seconds", -1, "--checkpoint_seconds -1: the least time between two full checkpoints .seconds. must be "
                               "a number >= 0"),
    ("checkpoint_seconds", "soon", "--checkpoint_seconds 'soon'"),
    ("checkpoint_seconds", True, "--checkpoint_seconds True"),
    ("checkpoint_seconds", float("nan"), "--checkpoint_seconds nan"),
])
def test_values_out_of_range_name_the_key(key, value, message):
    config = _merged("bundles/ct_infection/configs/train.json")
    with pytest.raises(OptionError, match=message):
        check_overrides(config, {key: value})


def test_values_in_range_pass():
    config = _merged("bundles/ct_infection/configs/train.json")
    assert check_overrides(config, {"epochs": 1, "batch_size": 1, "spatial_size": [32, 48], "device": "cpu",
                                    "num_workers": 0, "val_interval": 2, "checkpoint_seconds": 0}) == {}
    assert check_overrides(config, {"checkpoint_seconds": 30.5}) == {}
    assert check_overrides(config, {"device": "auto"}) == {}


def test_every_problem_in_one_line():
    config = _merged("bundles/ct_infection/configs/train.json")
    with pytest.raises(OptionError) as info:
        check_overrides(config, {"epohcs": 3, "batch_size": 0, "resume": "maybe"})
    text = str(info.value)
    assert "\n" not in text and "epohcs" in text and "--batch_size 0" in text and "--resume 'maybe'" in text


def test_device_cuda_without_cuda_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = _merged("bundles/ct_infection/configs/train.json")
    for device in ("cuda", "cuda:0"):
        with pytest.raises(OptionError, match=f"--device {device}: CUDA is not available on this machine.*--device cpu"):
            check_overrides(config, {"device": device})


def test_device_index_beyond_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    config = _merged("bundles/ct_infection/configs/train.json")
    check_overrides(config, {"device": "cuda:1"})
    with pytest.raises(OptionError, match="--device cuda:2: this machine has 2 CUDA device"):
        check_overrides(config, {"device": "cuda:2"})


def test_output_dir_that_is_a_file_or_cannot_be_created(tmp_path):
    config = _merged("bundles/ct_infection/configs/train.json")
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OptionError, match=f"--output_dir {afile}: this is a file, not a folder"):
        check_overrides(config, {"output_dir": str(afile)})
    with pytest.raises(OptionError, match=f"--output_dir {afile}/run: cannot be created, {afile} is a file"):
        check_overrides(config, {"output_dir": str(afile / "run")})
    check_overrides(config, {"output_dir": str(tmp_path / "new" / "run")})  # created later, when missing
    assert not (tmp_path / "new").exists()


def test_output_dir_without_write_permission(tmp_path, monkeypatch):
    config = _merged("bundles/ct_infection/configs/train.json")
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)  # root may write anywhere
    with pytest.raises(OptionError, match=f"--output_dir {locked}/run: cannot be written, no write permission in {locked}"):
        check_overrides(config, {"output_dir": str(locked / "run")})


def test_value_rules_name_keys_of_the_bundles():
    configs = [_merged(f"bundles/{t}/configs/train.json")
               for t in ("ct_infection", "alzheimer_mri", "pneumonia_xray", "chest_xray")]
    assert all(all(k in c for k in VALUE_RULES) for c in configs)


# --- check_command_line: reads the command line, fixes the running config's booleans ------------------------


def _toy_bundle(tmp_path: Path) -> Path:
    configs = tmp_path / "toy" / "configs"
    configs.mkdir(parents=True)
    (configs / "train.json").write_text(json.dumps({
        "imports": ["$import medbundle"],
        "flag": True,
        "epochs": 2,
        "uses_flag": {"_target_": "builtins.dict", "flag": "@flag"},
        "component": {"_target_": "builtins.dict", "clip": True, "n": 1},
        "initialize": ["$medbundle.options.check_command_line()"],
        "run": ["$None"],
    }))
    return configs / "train.json"


def _workflow(monkeypatch, config: Path, *args: str, **overrides):
    from monai.bundle import ConfigWorkflow

    monkeypatch.setattr(sys, "argv", ["monai/bundle/__main__.py", "run", "--config_file", str(config), *args])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    workflow = ConfigWorkflow(config_file=str(config), logging_file=False, **overrides)
    workflow.initialize()
    return workflow


def test_command_line_booleans_reach_monai_components_as_booleans(tmp_path, monkeypatch):
    """``--component#clip false`` is a real False for a MONAI (non-medbundle) component too."""
    config = _toy_bundle(tmp_path)
    workflow = _workflow(monkeypatch, config, "--flag", "false", "--component#clip", "no",
                         flag="false", **{"component#clip": "no"})
    assert workflow.parser.get_parsed_content("flag") is False
    assert workflow.parser.get_parsed_content("uses_flag") == {"flag": False}
    assert workflow.parser.get_parsed_content("component") == {"clip": False, "n": 1}


def test_command_line_check_stops_on_a_bad_option(tmp_path, monkeypatch):
    config = _toy_bundle(tmp_path)
    with pytest.raises(RuntimeError) as info:
        _workflow(monkeypatch, config, "--epohcs", "3", epohcs=3)
    assert isinstance(info.value.__cause__, OptionError) and "did you mean 'epochs'" in str(info.value.__cause__)
    with pytest.raises(RuntimeError) as info:
        _workflow(monkeypatch, config, "--flag", "maybe", flag="maybe")
    assert "--flag 'maybe': not a boolean" in str(info.value.__cause__)


def test_command_line_check_installs_the_excepthook(tmp_path, monkeypatch):
    from medbundle.errors import excepthook

    _workflow(monkeypatch, _toy_bundle(tmp_path))
    assert sys.excepthook is excepthook


def test_command_line_check_outside_a_run_command_does_nothing(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epohcs", "3"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    before = sys.excepthook
    check_command_line()
    assert sys.excepthook is before


def test_command_line_check_with_an_explicit_argv(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    config = _toy_bundle(tmp_path)
    check_command_line(["run", "--config_file", str(config), "--epochs", "3"])
    with pytest.raises(OptionError, match="--epochs 0"):
        check_command_line(["run", "--config_file", str(config), "--epochs", "0"])
    with pytest.raises(OptionError, match="no config file at"):
        check_command_line(["run", "--config_file", str(tmp_path / "missing.json")])


@pytest.mark.parametrize("config", [
    "bundles/ct_infection/configs/train.json", "bundles/ct_infection/configs/inference.json",
    "bundles/alzheimer_mri/configs/train.json", "bundles/alzheimer_mri/configs/inference.json",
    "configs/evaluate.json", "configs/explain.json", "configs/multi_process.json",
])
def test_the_check_is_the_first_initialize_item(config):
    assert json.loads((REPO / config).read_text())["initialize"][0] == "$medbundle.options.check_command_line()"


def test_pretrained_takes_a_boolean_word_or_a_path():
    """``pretrained`` defaults to true (installed ImageNet weights) but also takes a local state dict: a boolean word
    becomes a boolean, a path passes through for the network to check; other boolean keys stay strict."""
    config = {"pretrained": True, "resume": False}
    assert check_overrides(config, {"pretrained": "false"}) == {"pretrained": False}
    assert check_overrides(config, {"pretrained": "/weights/lite0.pth"}) == {}
    with pytest.raises(OptionError, match="--resume '/weights/lite0.pth': not a boolean"):
        check_overrides(config, {"resume": "/weights/lite0.pth"})
