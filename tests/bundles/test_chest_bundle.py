"""The chest_xray bundle: COVID-QU-Ex's layout (images with lung and infection masks) through --dataset_dir, noise
augmentation on in training and off in every evaluation, the seed's models with their first convolution trained,
external evaluation side by side with the internal test split; and (real data) the figures of the docs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import Randomizable
from PIL import Image

from conftest import REPO, SHARED_DATA, bundle_config, run_bundle

CONFIGS = REPO / "bundles" / "chest_xray" / "configs"
SMALL = ("--spatial_size", "[64, 64]", "--batch_size", "8", "--epochs", "2")


@pytest.fixture(scope="module")
def chest_demo(tmp_path_factory):
    from medbundle.data.demo_chest import make_chest_demo

    return make_chest_demo(tmp_path_factory.mktemp("chest_demo"), n_per_class=14, size=96, seed=3)


def _parser(*names, dataset_dir, output_dir, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_meta(str(CONFIGS / "metadata.json"))
    parser.read_config([str(CONFIGS / f"{n}.json") for n in names])
    parser["bundle_root"] = str(REPO / "bundles" / "chest_xray")
    parser["output_dir"] = str(output_dir)
    parser["dataset_dir"] = str(dataset_dir)
    parser["device"] = "$torch.device('cpu')"
    parser["spatial_size"] = [64, 64]
    for k, v in overrides.items():
        parser[k] = v
    parser.parse()
    return parser


def _random_transforms(compose) -> list[str]:
    return [type(t).__name__ for t in compose.transforms if isinstance(t, Randomizable)]


def test_noise_augmentation_is_on_in_training_and_never_in_evaluation(chest_demo, tmp_path):
    """The seed built its evaluation set from the training dataset object and so switched augmentation off for
    both; here the training loader yields freshly augmented images every epoch, and neither validation nor the
    evaluation's test, calibration and external sets apply any random transform."""
    parser = _parser("train", "evaluate", dataset_dir=chest_demo, output_dir=tmp_path / "run")
    train_names = _random_transforms(parser.get_parsed_content("train#preprocessing"))
    for name in ("RandGaussianNoised", "RandSpeckleNoised", "RandAdjustContrastd"):
        assert name in train_names
    for key in ("validate#preprocessing", "calibrate#dataset#transform", "external#transform"):
        assert _random_transforms(parser.get_parsed_content(key)) == [], key
    train_ds = parser.get_parsed_content("train#dataset")
    first, again = train_ds[0]["image"], train_ds[0]["image"]
    assert first.shape == again.shape and not torch.equal(first, again)  # augmented anew on every read
    val_ds = parser.get_parsed_content("validate#dataset")
    assert torch.equal(val_ds[0]["image"], val_ds[0]["image"])
    # the same image through the training pipeline without randomness equals the evaluation one: only the
    # augmentation differs, not the preprocessing
    item = dict(val_ds.data[0])
    deterministic = parser.get_parsed_content("preprocessing")
    from monai.transforms import Compose

    plain = Compose(deterministic + [parser.get_parsed_content("to_plain_tensors")])(dict(item))["image"]
    assert torch.equal(torch.as_tensor(plain), val_ds[0]["image"])


def test_evaluation_items_carry_their_lung_and_infection_masks(chest_demo, tmp_path):
    parser = _parser("train", "evaluate", dataset_dir=chest_demo, output_dir=tmp_path / "run")
    datalists = parser.get_parsed_content("datalists")
    assert all("lung_mask" in item and "mask" in item for s in datalists.values() for item in s)
    assert not any("mask" in item["image"].split("/")[-2] for s in datalists.values() for item in s)
    item = parser.get_parsed_content("validate#dataset")[0]
    assert item["lung_mask"].shape == item["image"].shape
    assert set(torch.unique(item["lung_mask"]).tolist()) <= {0.0, 1.0} and item["lung_mask"].sum() > 0


def test_class_weights_come_from_the_class_counts(chest_demo, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(chest_demo, data)
    for f in sorted((data / "Normal" / "images").iterdir())[:8]:  # fewer normal films
        for sub in ("images", "lung masks", "infection masks"):
            (data / "Normal" / sub / f.name).unlink()
    parser = _parser("train", dataset_dir=data, output_dir=tmp_path / "run")
    loss = parser.get_parsed_content("loss")
    counts = np.bincount([i["label"] for i in parser.get_parsed_content("datalists")["train"]], minlength=3)
    expected = counts.sum() / (3 * counts)
    assert torch.allclose(loss.weight.cpu(), torch.as_tensor(expected, dtype=torch.float32), rtol=1e-5)
    assert loss.weight[2] > loss.weight[0]  # Normal (the rarest here) weighs most


def test_resnet50_first_convolution_is_trained(chest_demo, tmp_path):
    """The seed replaced ResNet50's conv1 for 1-channel input and gave the optimiser the head only: conv1 stayed
    random. Here every parameter, conv1 included, is in the optimiser and changes in a training step."""
    parser = _parser("train", "resnet50", dataset_dir=chest_demo, output_dir=tmp_path / "run", epochs=1)
    network = parser.get_parsed_content("network")
    optimizer = parser.get_parsed_content("optimizer")
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    conv1 = network.conv1.weight
    assert conv1.shape[1] == 1 and id(conv1) in in_optimizer and conv1.requires_grad
    before = conv1.detach().clone()
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    network.train()
    loss = parser.get_parsed_content("loss")(network(batch["image"]), batch["label"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, conv1.detach())


def _figure1_like(root, demo):
    """An external set as a metadata table (Figure1's columns, cp1252), with a blank finding and a lateral view."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = ["patientid,offset,sex,age,finding,survival,view,modality,notes"]
    picks = [("COVID-19", "COVID-19"), ("Non-COVID", "Pneumonia"), ("Normal", "No finding")]
    n = 0
    for folder, finding in picks:
        for f in sorted((demo / folder / "images").iterdir())[:4]:
            n += 1
            pid = f"EXT-{n:05d}"
            Image.open(f).convert("RGB").save(images / f"{pid}.jpg", quality=90)
            rows.append(f"{pid},,F,60,{finding},,PA,X-ray,caf\xe9 note")
    Image.open(f).save(images / "EXT-99999.png")
    rows.append("EXT-99999,,M,50,,,PA,X-ray,no finding recorded")
    (root / "metadata.csv").write_bytes("\n".join(rows).encode("cp1252"))
    return root


@pytest.mark.slow
def test_trains_on_the_covid_qu_ex_layout_and_reports_external_sets(chest_demo, tmp_path):
    out = tmp_path / "run"
    external = _figure1_like(tmp_path / "figure1", chest_demo)
    seed_layout = tmp_path / "hospital_b"  # the seed's external layout: Data/test/{COVID19,NORMAL,PNEUMONIA}
    for folder, seed_name in (("COVID-19", "COVID19"), ("Non-COVID", "PNEUMONIA"), ("Normal", "NORMAL")):
        (seed_layout / "Data" / "test" / seed_name).mkdir(parents=True)
        for f in sorted((chest_demo / folder / "images").iterdir())[4:7]:
            Image.open(f).save(seed_layout / "Data" / "test" / seed_name / f.name.replace(" ", "_"))
    proc = run_bundle(bundle_config("chest_xray", "train"), "--dataset_dir", str(chest_demo), "--output_dir",
                      str(out), *SMALL, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert "Non-COVID" in log and "Pneumonia" in log  # the alias is logged
    assert (out / "models" / "model.pt").is_file()
    sets = json.dumps([{"path": str(external), "name": "figure1", "image_column": "patientid",
                        "label_column": "finding"}, str(seed_layout)])
    proc = run_bundle(bundle_config("chest_xray", "train", "evaluate"), "--dataset_dir", str(chest_demo),
                      "--output_dir", str(out), *SMALL, "--external_dir", sets, "--uncertainty", "none", cwd=tmp_path)
    comparison = json.loads((out / "eval" / "external.json").read_text())
    internal = json.loads((out / "eval" / "metrics.json").read_text())
    assert comparison["internal"]["n"] == internal["n"]
    names = [s["name"] for s in comparison["external"]]
    assert names == ["figure1", "hospital_b"]
    # both sets are copies of demo films: those the model trained or validated on are left out and listed
    split = json.loads((out / "split.json").read_text())["splits"]
    seen = {i.split("/")[-1] for s in ("train", "val") for i in split[s]}
    hospital_b = comparison["external"][1]
    copied = [f for folder in ("COVID-19", "Non-COVID", "Normal")
              for f in sorted((chest_demo / folder / "images").iterdir())[4:7]]
    expected_out = {f.name.replace(" ", "_") for f in copied if f.name in seen}
    left_out = {i.split("/")[-1] for i in hospital_b["training_copies_left_out"]}
    assert expected_out and expected_out <= left_out  # (a film may also be a near duplicate of another demo film)
    assert hospital_b["n"] + len(left_out) == 9
    fig1 = comparison["external"][0]
    assert fig1["n"] + len(fig1["training_copies_left_out"]) == 12 and fig1["training_copies_left_out"]
    acc = fig1["accuracy"]
    assert 0 <= acc["lo"] <= acc["value"] <= acc["hi"] <= 1
    assert fig1["drop"]["accuracy"] == pytest.approx(acc["value"] - comparison["internal"]["accuracy"]["value"])
    assert (out / "eval" / "external" / "figure1" / "metrics.json").is_file()
    assert (out / "eval" / "external.png").stat().st_size > 1000
    md = (out / "eval" / "external.md").read_text()
    assert "figure1" in md and "internal test" in md and "Drop from internal to external" in md
    assert "blank" in (proc.stdout + proc.stderr).lower() or "EXT-99999" in proc.stdout + proc.stderr
    with open(out / "eval" / "external" / "figure1" / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == fig1["n"]


@pytest.mark.slow
@pytest.mark.realdata
def test_covid_qu_ex_as_published_loads_through_the_bundle(tmp_path):
    parser = _parser("train", dataset_dir=SHARED_DATA / "covid_xray", output_dir=tmp_path / "run")
    datalists = parser.get_parsed_content("datalists")
    total = sum(len(s) for s in datalists.values())
    assert total == 1864 + 932 + 932
    labels = np.bincount([i["label"] for s in datalists.values() for i in s], minlength=3)
    assert labels.tolist() == [1864, 932, 932]
