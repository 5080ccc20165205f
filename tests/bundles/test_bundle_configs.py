"""Every bundle, checked the day it lands: layout, shared copies, and train / evaluate / inference in agreement.

Parametrized over every folder of ``bundles/`` that has ``configs/train.json``: a new bundle is checked without
editing this file. Nothing here trains; configs are parsed and their parts instantiated.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import sync_bundles  # noqa: E402

import medbundle  # noqa: E402

BUNDLES = [p.name for p in sync_bundles.bundles()]
STANDARD = {"metadata", "train", "inference", "evaluate", "explain", "multi_gpu_train"}
# the only keys from outside that a network definition may read: facts of the data, not of the network
NETWORK_INPUTS = {"num_classes", "spatial_size", "pretrained"}


def overlays(bundle: str) -> list[str]:
    """The bundle's own overlays (full_size.json, baseline.json, ...): every config that is not a standard one."""
    return sorted(p.stem for p in (REPO / "bundles" / bundle / "configs").glob("*.json") if p.stem not in STANDARD)


def training_only(bundle: str, overlay: str) -> bool:
    """An overlay that changes the training workflow itself (keys inside ``train#``/``validate#``, such as
    feature_extraction.json): merged over train.json and evaluate.json; inference.json does not have those parts."""
    keys = json.loads((REPO / "bundles" / bundle / "configs" / f"{overlay}.json").read_text())
    return any(k.startswith(("train#", "validate#")) for k in keys)


def parse(bundle: str, *names: str, tmp_path: Path) -> ConfigParser:
    configs = REPO / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_meta(str(configs / "metadata.json"))
    parser.read_config([str(configs / f"{n}.json") for n in names])
    parser["bundle_root"] = str(REPO / "bundles" / bundle)
    parser["output_dir"] = str(tmp_path / "run")
    parser["dataset_dir"] = str(tmp_path / "data")
    parser["device"] = "$torch.device('cpu')"
    parser.parse()
    return parser


def test_there_are_bundles():
    assert {"ct_infection", "alzheimer_mri"} <= set(BUNDLES)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_model_zoo_layout(bundle):
    root = REPO / "bundles" / bundle
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "multi_gpu_train.json",
                 "explain.json", "logging.conf"):
        assert (root / "configs" / name).is_file(), f"{bundle}: configs/{name} missing"
    assert (root / "docs" / "README.md").is_file() and (root / "LICENSE").is_file()
    links = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_symlink()]
    assert not links, f"{bundle} holds symbolic links {links}: a bundle folder must work when copied alone"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_trainer_sets_gradients_to_none(bundle):
    """MONAI's SupervisedTrainer zero-fills every gradient before each step unless told otherwise; PyTorch's own
    default (and a hand-written loop's) sets them to None, which saves a memset over the parameters and an add in
    backward: 2-3 % of a demo step (scripts/benchmark_training.py), with bit-identical training."""
    train = json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())
    assert train["train"]["trainer"].get("optim_set_to_none") is True, f"{bundle}: train#trainer#optim_set_to_none"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_declares_the_packages_configs_name(bundle):
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    required = meta["required_packages_version"]
    assert required.get("medbundle") == medbundle.__version__, "metadata.json must list medbundle and its version"
    # every third-party package a config names by module (monai, torch and ignite aside) is declared
    text = " ".join(p.read_text() for p in (REPO / "bundles" / bundle / "configs").glob("*.json"))
    assert "pytorch-ignite" in required and ("ignite." not in text or "pytorch-ignite" in required)
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == len(channel_def)


def test_shared_copies_have_not_drifted():
    drifted = sync_bundles.drifted()
    assert not drifted, f"bundle copies differ from their source: {drifted}; run python scripts/sync_bundles.py"


def test_drift_is_detected(tmp_path):
    """The copy check fails when one bundle's copy is edited (a test that can fail)."""
    import shutil

    shutil.copytree(REPO / "bundles", tmp_path / "bundles", symlinks=True)
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copy(REPO / "LICENSE", tmp_path / "LICENSE")
    assert sync_bundles.drifted(tmp_path) == []
    victim = tmp_path / "bundles" / BUNDLES[0] / "configs" / "evaluate.json"
    edited = victim.read_text().replace("/eval'", "/evaluation'")
    assert edited != victim.read_text()
    victim.write_text(edited)
    assert sync_bundles.drifted(tmp_path) == [f"bundles/{BUNDLES[0]}/configs/evaluate.json (source configs/evaluate.json)"]
    sync_bundles.sync(tmp_path)
    assert sync_bundles.drifted(tmp_path) == []


def _references(obj) -> set[str]:
    """Top-level ids that ``@id`` references inside a raw config value point to."""
    found = set()
    for text in re.findall(r"@([A-Za-z_][\w#]*)", json.dumps(obj)):
        found.add(text.split("#")[0])
    return found


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_hyperparameters_live_only_in_network_def(bundle):
    configs = REPO / "bundles" / bundle / "configs"
    for path in configs.glob("*.json"):
        config = json.loads(path.read_text())
        net = config.get("network_def")
        if net is None:
            continue
        outside = _references(net) - NETWORK_INPUTS
        assert not outside, (f"{path.relative_to(REPO)}: network_def reads {sorted(outside)} from top-level keys; "
                             f"keep network hyper-parameters inside network_def (overlays set network_def#key)")


def _sample_png(path: Path) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:77]
    img = (120 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 10, xx.shape)).clip(0, 255)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def _preprocess(parser: ConfigParser, key: str, image: Path) -> torch.Tensor:
    out = parser.get_parsed_content(key)({"image": str(image), "label": 0})
    return torch.as_tensor(out["image"]).float()


def _net_signature(net: torch.nn.Module) -> tuple:
    return type(net).__name__, [(k, tuple(v.shape)) for k, v in net.state_dict().items()], repr(net)


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("overlay", [None, "__each__"])
def test_train_evaluate_inference_agree(bundle, overlay, tmp_path):
    """Network, preprocessing, class names and the Grad-CAM layer are the same whichever config builds them."""
    for extra in ([None] if overlay is None else overlays(bundle)):
        tail = [extra] if extra else []
        infer_tail = [] if extra and training_only(bundle, extra) else tail
        train = parse(bundle, "train", *tail, tmp_path=tmp_path)
        evaluate = parse(bundle, "train", "evaluate", *tail, tmp_path=tmp_path)
        infer = parse(bundle, "inference", *infer_tail, tmp_path=tmp_path)
        explain = parse(bundle, "inference", "explain", *infer_tail, tmp_path=tmp_path)
        where = f"{bundle} {'+ ' + extra if extra else ''}"

        names = [p.get_parsed_content("class_names") for p in (train, evaluate, infer, explain)]
        assert all(n == names[0] for n in names), f"{where}: class names differ {names}"
        meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
        channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
        assert names[0] == [channel_def[k] for k in sorted(channel_def, key=int)]

        sizes = [list(p.get_parsed_content("spatial_size")) for p in (train, evaluate, infer, explain)]
        assert all(s == sizes[0] for s in sizes), f"{where}: spatial sizes differ {sizes}"
        if extra is None:
            assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == sizes[0], (
                f"{where}: metadata.json's input spatial_shape differs from spatial_size")

        torch.manual_seed(0)
        nets = [p.get_parsed_content("network_def") for p in (train, evaluate, infer, explain)]
        signatures = [_net_signature(n) for n in nets]
        assert all(s == signatures[0] for s in signatures), f"{where}: the networks differ between configs"

        image = _sample_png(tmp_path / "sample.png")
        ref = _preprocess(train, "validate#preprocessing", image)
        for parser, key in ((evaluate, "validate#preprocessing"), (infer, "preprocessing"), (explain, "preprocessing")):
            got = _preprocess(parser, key, image)
            assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-6), f"{where}: {key} differs"
        assert tuple(ref.shape[-2:]) == tuple(sizes[0])

        layers = {p.get_parsed_content("target_layer") for p in (train, infer, explain)}
        assert len(layers) == 1, f"{where}: Grad-CAM layers differ {layers}"
        layer = layers.pop()
        if layer is not None:
            assert layer in dict(nets[0].named_modules()), f"{where}: Grad-CAM layer {layer!r} is not in the network"


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_monai_bundle_properties_are_complete(bundle):
    """MONAI's own check of the train and inference workflow properties (what MONAI Label and the model zoo read)."""
    from monai.bundle import ConfigWorkflow

    configs = REPO / "bundles" / bundle / "configs"
    for name, kind in (("train", "train"), ("inference", "infer")):
        wf = ConfigWorkflow(config_file=str(configs / f"{name}.json"), meta_file=str(configs / "metadata.json"),
                            workflow_type=kind)
        wf.initialize()
        assert wf.check_properties() == [], f"{bundle}/{name}.json"
