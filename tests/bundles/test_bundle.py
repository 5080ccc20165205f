"""The ct_infection bundle through ``monai.bundle``, as a user runs it: train, evaluate, infer, export,
resume after a kill, determinism, two processes with torchrun, bad data, and the real head CT set."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    BUNDLES,
    SHARED_DATA,
    SMOKE,
    bundle_config,
    export_pngs,
    run_bundle,
)

TASK = "ct_infection"
CONFIGS = BUNDLES / TASK / "configs"


def read_log(output_dir: Path) -> list[dict]:
    with open(output_dir / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_outputs(trained):
    models = trained / "models"
    assert (models / "model.pt").is_file()
    # checkpoint_seconds 60: the smoke run's first epoch ends sooner than that, so only the last epoch has one
    assert sorted(p.name for p in models.glob("checkpoint_epoch=*.pt")) == ["checkpoint_epoch=2.pt"]
    assert not list(models.glob(".*tmp")), "temporary files left behind"
    rows = read_log(trained)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert float(r["train_loss"]) > 0 and 0 <= float(r["val_accuracy"]) <= 1 and 0 <= float(r["val_auc"]) <= 1
        assert float(r["lr"]) > 0


@pytest.mark.slow
def test_tensorboard_has_loss_lr_and_validation_metrics(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss_iteration", "train_loss", "lr", "val_accuracy", "val_auc"} <= tags, tags
    assert len(events.Scalars("lr")) == 2


@pytest.mark.slow
def test_evaluate_writes_report(trained, ct_demo_dir, tmp_path):
    # run from an unrelated folder (not the repository's parent: a clone named "medbundle" there would shadow the
    # package as a namespace package for `python -m`)
    run_bundle(bundle_config(TASK, "train", "evaluate"), "--dataset_dir", str(ct_demo_dir), "--output_dir", str(trained),
               *SMOKE[2:], cwd=tmp_path)
    eval_dir = trained / "eval"
    for name in ("metrics.json", "classification_report.txt", "confusion_matrix.png", "roc.png",
                 "training_curves.png", "predictions.csv", "reliability.png"):
        assert (eval_dir / name).is_file(), name
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["n"] == 24 and 0 <= metrics["accuracy"] <= 1
    assert set(metrics["per_class"]) == {"no_infection", "mild_infection", "severe_infection"}
    with open(eval_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and rows[0]["id"].startswith("Test.mat#")
    probs = np.array([[float(r[f"prob_{c}"]) for c in ("no_infection", "mild_infection", "severe_infection")] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    text = (eval_dir / "classification_report.txt").read_text()
    assert "precision" in text
    # the demo's Test.mat slices carry no subject key: the report says its figures may be optimistic, at the top
    assert text.startswith("!" * 100) and "FIGURES MAY BE OPTIMISTIC" in text.splitlines()[1]
    assert metrics["warning"].startswith("FIGURES MAY BE OPTIMISTIC")
    assert json.loads((trained / "split_check.json").read_text())["subject_clean"] is False


@pytest.mark.slow
def test_inference_on_folder_mat_dicom_nifti(trained, ct_demo_dir, tmp_path):
    """inference.json on a .mat file, and on a folder mixing PNG, DICOM and NIfTI files."""
    import nibabel as nib
    from pydicom.data import get_testdata_file

    folder, images = export_pngs(ct_demo_dir / "Test.mat", tmp_path / "scans", 3)
    (folder / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    nib.save(nib.Nifti1Image(images[3].astype(np.float32), np.eye(4)), str(folder / "slice3.nii.gz"))
    for input_path, n in ((ct_demo_dir / "Test.mat", 24), (folder, 5)):
        out = tmp_path / f"pred_{n}"
        run_bundle(bundle_config(TASK, "inference"), "--input_path", str(input_path), "--output_dir", str(trained),
                   "--predictions_dir", str(out), *SMOKE[4:], cwd=tmp_path)
        with open(out / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n
        assert {r["pred_name"] for r in rows} <= {"no_infection", "mild_infection", "severe_infection"}
    assert {r["id"] for r in rows} == {"slice0.png", "slice1.png", "slice2.png", "ct.dcm", "slice3.nii.gz"}


@pytest.mark.slow
def test_verify_net_in_out_and_ckpt_export(trained, tmp_path):
    common = ["--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json"),
              "--network_def#features", "[8, 16, 16, 32, 32]"]
    for cmd in (["verify_net_in_out", "network_def", "--device", "cpu"],
                ["ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"),
                 "--ckpt_file", str(trained / "models" / "model.pt"), "--key_in_ckpt", ""]):
        proc = subprocess.run([sys.executable, "-m", "monai.bundle", *cmd, *common], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    import torch

    net = torch.jit.load(str(tmp_path / "model.ts"))
    assert net(torch.rand(2, 1, 64, 64)).shape == (2, 3)


@pytest.mark.slow
def test_kill_then_resume(ct_demo_dir, tmp_path):
    """A run killed (SIGKILL) mid-epoch continues from its latest full checkpoint with --resume true."""
    out = tmp_path / "run"
    overlay = tmp_path / "kill.json"
    overlay.write_text(json.dumps({
        "run": [
            "$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once=@kill_at), "
            "lambda engine: os.kill(os.getpid(), 9))",
            "$@train#trainer.run()",
        ]
    }))
    args = ("--dataset_dir", str(ct_demo_dir), "--output_dir", str(out), *SMOKE[2:], "--epochs", "3",
            "--checkpoint_seconds", "0")
    # 48 training images in batches of 8: 6 iterations an epoch; iteration 9 is in the middle of epoch 2
    killed = run_bundle(bundle_config(TASK, "train", str(overlay)), *args, "--kill_at", "9", check=False)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [p.name for p in (out / "models").glob("checkpoint_epoch=*.pt")] == ["checkpoint_epoch=1.pt"]
    assert [int(r["epoch"]) for r in read_log(out)] == [1]

    resumed = run_bundle(bundle_config(TASK, "train"), *args, "--resume", "true")
    assert "continuing from" in resumed.stdout + resumed.stderr and "checkpoint_epoch=1.pt at epoch 2/3" in resumed.stdout + resumed.stderr
    assert [int(r["epoch"]) for r in read_log(out)] == [1, 2, 3]
    import torch

    state = torch.load(out / "models" / "checkpoint_epoch=3.pt", map_location="cpu", weights_only=False)
    assert state["trainer"]["iteration"] == 3 * 6 and state["trainer"]["max_epochs"] == 3 and "optimizer" in state and "lr_scheduler" in state and "best_model" in state


@pytest.mark.slow
def test_resume_after_kill_matches_the_uninterrupted_run(ct_demo_dir, tmp_path):
    """Killed (SIGKILL) early in epoch 3 of 4 and resumed: the same log, model and checkpoints as without the kill.

    The checkpoint holds the random-number state (python, numpy, torch, the augmentation's generators), the epoch
    log and the schedules, so the resumed epochs draw the same shuffles and augmentations as the uninterrupted
    run; n_saved=2 holds across the two processes, and no temporary file is left.
    """
    import torch

    overlay = tmp_path / "kill.json"
    # 48 training images in batches of 8: 6 iterations an epoch; iteration 13 is the first of epoch 3
    overlay.write_text(json.dumps({"run": [
        "$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once=13), "
        "lambda engine: os.kill(os.getpid(), 9))",
        "$@train#trainer.run()",
    ]}))
    common = ("--dataset_dir", str(ct_demo_dir), *SMOKE[2:], "--epochs", "4", "--seed", "7",
              "--checkpoint_seconds", "0")
    run_bundle(bundle_config(TASK, "train"), *common, "--output_dir", str(tmp_path / "whole"))
    killed = run_bundle(bundle_config(TASK, "train", str(overlay)), *common, "--output_dir", str(tmp_path / "cut"),
                        check=False)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [int(r["epoch"]) for r in read_log(tmp_path / "cut")] == [1, 2]
    resumed = run_bundle(bundle_config(TASK, "train"), *common, "--output_dir", str(tmp_path / "cut"), "--resume", "true")
    assert "checkpoint_epoch=2.pt at epoch 3/4" in resumed.stdout + resumed.stderr

    def log(name):
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in read_log(tmp_path / name)]

    assert [int(r["epoch"]) for r in log("cut")] == [1, 2, 3, 4]
    assert log("cut") == log("whole")
    for name in ("model.pt", "checkpoint_epoch=4.pt"):
        a = torch.load(tmp_path / "whole" / "models" / name, map_location="cpu", weights_only=True)
        b = torch.load(tmp_path / "cut" / "models" / name, map_location="cpu", weights_only=True)
        a, b = (x.get("model", x) for x in (a, b))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    models = tmp_path / "cut" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_epoch=3.pt", "checkpoint_epoch=4.pt", "model.pt"]


@pytest.mark.slow
def test_same_seed_same_metrics(ct_demo_dir, tmp_path):
    logs = []
    for name in ("a", "b"):
        run_bundle(bundle_config(TASK, "train", "configs/smoke.json"), "--dataset_dir", str(ct_demo_dir),
                   "--output_dir", str(tmp_path / name), *SMOKE, "--seed", "7")
        logs.append([{k: v for k, v in r.items() if k != "epoch_seconds"} for r in read_log(tmp_path / name)])
    assert logs[0] == logs[1]


@pytest.mark.slow
@pytest.mark.parametrize("launch", ["medbundle.launch", "torch.distributed.run --standalone"])
def test_two_process_torchrun_on_cpu(ct_demo_dir, tmp_path, launch):
    """Two ranks on CPU (gloo), started by medbundle's loopback launcher and by torchrun."""
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", *launch.split(), "--nproc_per_node", "2"]
    proc = run_bundle(bundle_config(TASK, "train", "multi_gpu_train", "configs/smoke.json"), "--dataset_dir",
                      str(ct_demo_dir), "--output_dir", str(out), *SMOKE, "--device", "cpu", launcher=launcher,
                      env={"OMP_NUM_THREADS": "1"})
    text = proc.stdout + proc.stderr
    assert "rank 0/2" in text and "rank 1/2" in text
    assert (out / "models" / "model.pt").is_file()
    assert [int(r["epoch"]) for r in read_log(out)] == [1, 2]  # one writer: rank 0
    assert len(list((out / "tensorboard").glob("events.*"))) == 1


@pytest.mark.slow
def test_bad_data_stops_before_training(tmp_path):
    from scipy import io as sio

    data = tmp_path / "data"
    data.mkdir()
    sio.savemat(data / "Train.mat", {"X": np.zeros((4, 8, 8)), "y": np.zeros(4)})
    out = tmp_path / "out"
    proc = run_bundle(bundle_config(TASK, "train"), "--dataset_dir", str(data), "--output_dir", str(out), check=False)
    assert proc.returncode != 0
    assert "Train.mat" in proc.stderr and "'X'" in proc.stderr
    assert not (out / "models").exists()


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "head_ct").is_dir(), reason="real head CT data not found at ../shared/data/head_ct")
def test_real_head_ct_trains_and_reports_auc(tmp_path):
    """The bundle trains on the Kaggle head CT set (class folders, mixed sizes and RGB/RGBA PNGs) via --dataset_dir."""
    out = tmp_path / "head_ct"
    args = ("--dataset_dir", str(SHARED_DATA / "head_ct"), "--output_dir", str(out),
            "--class_names", "['NORMAL', 'HEMORRHAGE']", "--epochs", "8", "--batch_size", "16")
    run_bundle(bundle_config(TASK, "train"), *args)
    assert json.loads((out / "split.json").read_text())  # the split made is kept for later runs
    run_bundle(bundle_config(TASK, "train", "evaluate"), *args)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    print(f"head CT held-out split: n={metrics['n']} accuracy={metrics['accuracy']:.3f} AUC={metrics['auc_macro_ovr']:.3f}")
    assert metrics["n"] >= 20 and math.isfinite(metrics["auc_macro_ovr"])
    assert metrics["auc_macro_ovr"] > 0.6
