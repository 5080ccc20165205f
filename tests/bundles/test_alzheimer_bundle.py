"""The alzheimer_mri bundle end to end: demo data, ResNet50 two-phase from a local file, parquet and Kaggle
folders through --dataset_dir, evaluation, explanations and the model comparison command."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SHARED_DATA, bundle_config, run_bundle
from helpers.data import HF_NAMES, write_hf_parquet
from helpers.networks import torchvision_style_state_dict
from PIL import Image

SMOKE = ("--epochs", "2", "--batch_size", "8", "--spatial_size", "[32, 32]")
RESNET = ("--spatial_size", "[32, 32]", "--head_epochs", "1", "--epochs", "2", "--batch_size", "8")


@pytest.fixture(scope="module")
def mri_demo(tmp_path_factory):
    from medbundle.data import make_mri_demo

    return make_mri_demo(tmp_path_factory.mktemp("mri_demo"), n_subjects=24, slices_per_subject=3, seed=1)


@pytest.fixture(scope="module")
def baseline_run(mri_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    proc = run_bundle(bundle_config("alzheimer_mri", "train", "baseline"), "--dataset_dir", str(mri_demo),
                      "--output_dir", str(out), *SMOKE, cwd=out)
    return out, proc


@pytest.fixture(scope="module")
def resnet_run(mri_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet50")
    weights = out / "imagenet_resnet50.pth"
    torch.save(torchvision_style_state_dict(), weights)
    proc = run_bundle(bundle_config("alzheimer_mri", "train", "resnet50"), "--dataset_dir", str(mri_demo),
                      "--output_dir", str(out), "--pretrained", str(weights), *RESNET, cwd=out)
    return out, proc


def _subject_groups(log: str) -> int:
    """The number of groups of a split made by subject and near-duplicate cluster, read from the training log."""
    found = re.search(r"grouped by subject and near-duplicate cluster \((\d+) groups\)", log)
    assert found, "the split was not grouped by subject and near-duplicate cluster"
    return int(found[1])


@pytest.mark.slow
def test_baseline_demo_training_and_evaluation(baseline_run, mri_demo):
    out, proc = baseline_run
    log = proc.stdout + proc.stderr
    assert _subject_groups(log) <= 24  # the 24 sub-XXX of the file names, joined where slices are near duplicates
    assert "phase 1/1 'train'" in log and "7,392,324" not in log  # BaselineCNN sized for 32 px
    assert (out / "models" / "model.pt").is_file() and (out / "run.json").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["config_file"][0].endswith("alzheimer_mri/configs/train.json") and run["overrides"]["epochs"] == 2
    assert run["config_file"][1].endswith("alzheimer_mri/configs/baseline.json")
    run_bundle(bundle_config("alzheimer_mri", "train", "baseline", "evaluate"), "--dataset_dir", str(mri_demo),
               "--output_dir", str(out), *SMOKE, cwd=out)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["class_names"] == ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]
    assert metrics["n"] == len(json.loads((out / "split.json").read_text())["splits"]["test"])
    assert (out / "eval" / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_resnet50_two_phases_from_a_local_torchvision_file(resnet_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, proc = resnet_run
    log = proc.stdout + proc.stderr
    assert "loaded pretrained weights" in log
    assert "phase 1/2 'head'" in log and "phase 2/2 'fine_tune'" in log
    assert "phase 'head' ends after epoch 1: 1 epoch(s) done" in log
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    assert {"phase", "lr/head", "lr/backbone"} <= set(tags)
    assert [e.value for e in events.Scalars("phase")] == [1, 2]
    assert [e.value for e in events.Scalars("lr/backbone")] == pytest.approx([1e-4, 1e-5])
    best = torch.load(out / "models" / "model.pt", weights_only=True)  # the best model's state dict
    assert best["conv1.weight"].shape == (64, 1, 7, 7) and best["fc.1.weight"].shape == (4, 2048)


@pytest.mark.slow
def test_resnet50_without_weights_trains_from_scratch_in_one_phase(mri_demo, tmp_path):
    proc = run_bundle(bundle_config("alzheimer_mri", "train", "resnet50"), "--dataset_dir", str(mri_demo),
                      "--output_dir", str(tmp_path), *RESNET[:2], "--epochs", "1", "--batch_size", "8", cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert "no pretrained weights given" in log and "phase 1/1 'scratch'" in log


@pytest.mark.slow
def test_comparison_ranks_resnet50_and_baseline_on_one_test_set(baseline_run, resnet_run, tmp_path):
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "medbundle.compare", str(baseline_run[0]), str(resnet_run[0]),
                           "--output_dir", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "comparison.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert {r["model"] for r in rows} == {baseline_run[0].name, resnet_run[0].name}
    assert float(rows[0]["macro_f1"]) >= float(rows[1]["macro_f1"])
    assert rows[0]["test_images"] == rows[1]["test_images"]
    for col in ("accuracy", "balanced_accuracy", "auc_macro_ovr", "recall_ModerateDemented", "parameters",
                "ms_per_image"):
        assert rows[0][col] != "", col
    sizes = {r["model"]: int(r["parameters"]) for r in rows}
    assert sizes[resnet_run[0].name] > 20_000_000 > sizes[baseline_run[0].name]
    # the two runs split the same demo data with the same seed: no test image was seen in training
    assert {r["test_seen_in_training"] for r in rows} == {"0"}
    assert "| rank | model | accuracy |" in (out / "comparison.md").read_text()
    assert Image.open(out / "comparison.png").size[0] > 300
    # a checkpoint file can be named instead of a run; a folder that is not a run is a clear error
    proc = subprocess.run([sys.executable, "-m", "medbundle.compare", str(resnet_run[0] / "models" / "model.pt"),
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 2 and "is not a medbundle training run" in proc.stderr


@pytest.mark.slow
def test_explanations_on_both_networks(baseline_run, resnet_run, mri_demo, tmp_path):
    for (out, _), overlay, layer in ((baseline_run, ("baseline",), "features.4"), (resnet_run, ("resnet50",), "layer4")):
        exp = tmp_path / out.name
        run_bundle(bundle_config("alzheimer_mri", "inference", *overlay, "explain"), "--output_dir", str(out),
                   "--dataset_dir", str(mri_demo), "--explain_dir", str(exp), "--spatial_size", "[32, 32]",
                   "--explain_methods", "['gradcam', 'gradcampp']", cwd=tmp_path)
        summary = json.loads((exp / "summary.json").read_text())
        assert summary["n_images"] == 72 and summary["methods"]["gradcam"]["target_layer"] == layer
        with open(exp / "explanations.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        # atrophy masks: localisation is scored where there is atrophy, NaN for the healthy stage
        assert {r["gradcam_pointing_game"] for r in rows if r["label"] == "NonDemented"} == {"nan"}
        assert all(r["gradcam_pointing_game"] in ("0.0", "1.0") for r in rows if r["label"] != "NonDemented")


@pytest.mark.slow
def test_parquet_and_kaggle_folders_train_through_dataset_dir(mri_demo, tmp_path):
    """The published parquet schema and the Kaggle folder layout train with nothing changed but --dataset_dir."""
    lines = (mri_demo / "datalist.csv").read_text().splitlines()[1:]
    rows = [line.split(",") for line in lines]
    order = {"MildDemented": 0, "ModerateDemented": 1, "NonDemented": 2, "VeryMildDemented": 3}  # parquet numbering
    parquet = tmp_path / "parquet" / "data"
    for split, part in (("train", rows[::2]), ("test", rows[1::2])):
        values = [np.asarray(Image.open(mri_demo / r[0])) for r in part]
        write_hf_parquet(parquet / f"{split}-00000-of-00001.parquet", [order[r[1]] for r in part])
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(parquet / f"{split}-00000-of-00001.parquet")
        encoded = []
        for v in values:
            import io

            buf = io.BytesIO()
            Image.fromarray(v).save(buf, format="JPEG")
            encoded.append({"bytes": buf.getvalue(), "path": "x.jpg"})
        pq.write_table(table.set_column(0, "image", pa.array(encoded, type=table.column("image").type)),
                       parquet / f"{split}-00000-of-00001.parquet")
    assert HF_NAMES[order["NonDemented"]] == "Non_Demented"
    kaggle = tmp_path / "kaggle" / "Alzheimer_s Dataset" / "train"
    for r in rows:
        folder = kaggle / r[1].replace("Demented", " Demented")  # "Mild Demented", "Non Demented" ...
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(mri_demo / r[0], folder / f"{r[2]}_{len(list(folder.iterdir()))}.jpg")
    for name, root in (("parquet", tmp_path / "parquet"), ("kaggle", tmp_path / "kaggle")):  # the default network
        out = tmp_path / f"run_{name}"
        args = ("--dataset_dir", str(root), "--output_dir", str(out), "--epochs", "1", "--batch_size", "8",
                "--spatial_size", "[32, 32]")
        proc = run_bundle(bundle_config("alzheimer_mri", "train"), *args, cwd=tmp_path)
        run_bundle(bundle_config("alzheimer_mri", "train", "evaluate"), *args, cwd=tmp_path)
        metrics = json.loads((out / "eval" / "metrics.json").read_text())
        log = proc.stdout + proc.stderr
        best = torch.load(out / "models" / "model.pt", weights_only=True)
        assert best["features.4.0.weight"].shape == (512, 256, 3, 3)  # the default network: CTNet 32..512
        if name == "parquet":
            assert metrics["n"] == len(rows[1::2]) and "found parquet layout" in log
        else:
            assert _subject_groups(log) <= 24  # the sub-XXX in the file names (and near-duplicate clusters)
            assert metrics["n"] > 0


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "alzheimer_mri" / "train").is_dir(),
                    reason="real Alzheimer MRI data not present at ../shared/data/alzheimer_mri")
def test_real_mri_trains_through_the_bundle(tmp_path):
    """One short epoch on a class-balanced subset of the real Kaggle slices (the documented run is in the docs)."""
    data = tmp_path / "subset"
    for folder in sorted((SHARED_DATA / "alzheimer_mri" / "train").iterdir()):
        (data / folder.name).mkdir(parents=True)
        for f in sorted(folder.glob("*.jpg"))[:24]:
            (data / folder.name / f.name).symlink_to(f)
    out = tmp_path / "run"
    proc = run_bundle(bundle_config("alzheimer_mri", "train"), "--dataset_dir", str(data), "--output_dir", str(out),
                      "--epochs", "1", "--batch_size", "16", "--spatial_size", "[64, 64]", cwd=tmp_path)
    # no subject in the Kaggle names: the split keeps near-duplicate clusters (a subject's adjacent slices) together
    assert _subject_groups(proc.stdout + proc.stderr) >= 3
    assert json.loads((out / "split_check.json").read_text())["subject_clean"] is True
    assert (out / "models" / "model.pt").is_file()


def test_bundle_files_follow_the_model_zoo_layout():
    root = REPO / "bundles" / "alzheimer_mri"
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "multi_gpu_train.json",
                 "explain.json", "logging.conf"):
        assert (root / "configs" / name).is_file(), name
    assert (root / "docs" / "README.md").is_file() and (root / "LICENSE").is_file()
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 4
