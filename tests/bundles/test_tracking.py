"""Experiment tracking with MLflow (``python -m monai.bundle run ... --tracking mlflow``) for every bundle: MONAI's
own MLflow settings, a local store in the run folder (``<output_dir>/mlruns.db`` with the artifacts in
``<output_dir>/mlruns/``), no server; TensorBoard stays the default and is still written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, run_bundle

ROOT = REPO
BUNDLE_FOLDERS = sorted(p.parents[1].name for p in (ROOT / "bundles").glob("*/configs/train.json"))
# small demo sets (as in the bundles' own tests); a bundle not listed gets its default demo set
DEMO_SIZES = {
    "ct_infection": {"n_train": 48, "n_val": 24, "n_test": 24, "size": 64, "seed": 1},
    "alzheimer_mri": {"n_subjects": 24, "slices_per_subject": 3, "seed": 1},
}
QUICK = ("--epochs", "1", "--batch_size", "8", "--spatial_size", "[32, 32]")


def configs(folder: str) -> Path:
    return ROOT / "bundles" / folder / "configs"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def targets(config) -> list[str]:
    """Every ``_target_`` in a config."""
    if isinstance(config, dict):
        return [t for k, v in config.items() for t in ([v] if k == "_target_" else targets(v))]
    return [t for v in config for t in targets(v)] if isinstance(config, list) else []


@pytest.mark.parametrize("folder", BUNDLE_FOLDERS)
def test_tracking_is_opt_in_and_configured(folder):
    """No MLflow handler unless --tracking mlflow is given; the tracking keys put the store in the run folder."""
    for name in ("train", "inference"):
        config = load(configs(folder) / f"{name}.json")
        assert not [t for t in targets(config) if "MLFlowHandler" in t], name
        assert config["tracking_uri"] == "$monai.utils.path_to_sqlite_uri(@output_dir + '/mlruns.db')", name
        assert config["experiment_name"] == "@bundle_name", name
    assert "summary_writer" in load(configs(folder) / "train.json")  # TensorBoard: always on


@pytest.mark.slow
@pytest.mark.parametrize("folder", BUNDLE_FOLDERS)
def test_mlflow_tracking_of_train_evaluate_and_inference(folder, tmp_path):
    """A smoke train, evaluate and inference with --tracking mlflow, then the store read with the MLflow client."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri, path_to_uri
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from medbundle.data import ensure_demo_data

    data = ensure_demo_data(tmp_path / "data", folder, **DEMO_SIZES.get(folder, {}))
    out, cwd = tmp_path / "run", tmp_path / "cwd"
    cwd.mkdir()
    train, overlays = configs(folder) / "train.json", [ROOT / "configs" / "smoke.json", configs(folder) / "evaluate.json"]
    args = ("--dataset_dir", data, "--output_dir", str(out), *QUICK, "--tracking", "mlflow")
    run_bundle(f"['{train}','{overlays[0]}']", *args, cwd=cwd)
    run_bundle(f"['{train}','{overlays[1]}']", *args, cwd=cwd)
    run_bundle(str(configs(folder) / "inference.json"), *args[:4], "--spatial_size", "[32, 32]", "--tracking", "mlflow",
               cwd=cwd)

    # one local store in the run folder, nothing in the current directory
    assert (out / "mlruns.db").is_file() and (out / "mlruns").is_dir()
    assert not [p.name for p in cwd.iterdir()], "tracking output outside the run folder"
    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(out / "mlruns.db")))
    experiment = client.get_experiment_by_name(load(train)["bundle_name"])
    assert experiment is not None and experiment.artifact_location == path_to_uri(out / "mlruns")
    runs = {r.info.run_name.split("_")[0]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["evaluate", "inference", "train"], [r.info.run_name for r in runs.values()]
    assert all(r.info.status == "FINISHED" for r in runs.values())

    # training: the loss of every iteration, the learning rate, the validation metrics of every epoch, the config
    run = runs["train"]
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in losses] == list(range(1, int(run.data.params["epoch_length"]) + 1))
    assert all(m.value > 0 for m in losses)
    assert "lr_group_0" in run.data.metrics
    for metric in ("val_accuracy", "val_auc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1], metric
    assert 0 <= run.data.metrics["val_accuracy"] <= 1
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert len(artifacts) == 1 and artifacts[0].startswith("config_") and artifacts[0].endswith(".json"), artifacts
    executed = load(out / "mlruns" / run.info.run_id / "artifacts" / artifacts[0])
    assert executed["bundle_name"] == load(train)["bundle_name"]

    # evaluation: the test-set metrics; inference: the executed config
    assert 0 <= runs["evaluate"].data.metrics["val_accuracy"] <= 1
    assert [a.path for a in client.list_artifacts(runs["inference"].info.run_id)][0].startswith("config_")

    # TensorBoard is still written
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train_loss", "val_accuracy"} <= set(events.Tags()["scalars"])
