"""evaluate.json fits calibration.json on the validation split and reports test figures with intervals; inference.json
applies the record (and ignores it once the model file changes)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from conftest import SMOKE, bundle_config, run_bundle

from medbundle.calibration import file_sha256

TASK = "ct_infection"
NAMES = ("no_infection", "mild_infection", "severe_infection")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_evaluate_fits_on_val_then_scores_test_and_inference_applies(trained, ct_demo_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("eval", "inference", ".lock"))
    common = ("--dataset_dir", str(ct_demo_dir), "--output_dir", str(run), *SMOKE[2:])
    run_bundle(bundle_config(TASK, "train", "evaluate"), *common, "--positive_class", "severe_infection",
               "--threshold_rule", "sensitivity:0.8", "--prevalence", "0.1", "--uncertainty_passes", "3", "--tta_views", "3",
               cwd=tmp_path)

    record = json.loads((run / "models" / "calibration.json").read_text())
    assert record["model_sha256"] == file_sha256(run / "models" / "model.pt")
    assert record["fitted_on"]["split"] == "val" and record["fitted_on"]["n"] == 24  # the demo's validation split
    assert record["threshold"]["positive_class"] == "severe_infection" and record["threshold"]["rule"] == "sensitivity:0.8"
    assert record["conformal"]["alpha"] == 0.1 and record["temperature"] > 0
    assert record["test_time_views"] == 3  # inference.json reads it and averages as many views

    eval_dir = run / "eval"
    m = json.loads((eval_dir / "metrics.json").read_text())
    assert m["n"] == 24  # the test split, scored with the record unchanged
    assert m["calibration"]["temperature"] == pytest.approx(record["temperature"])
    assert m["clinical"]["binary"]["threshold"] == pytest.approx(record["threshold"]["value"])
    assert m["clinical"]["binary"]["at_prevalence"]["prevalence"] == 0.1
    assert m["clinical"]["accuracy"]["lo"] <= m["accuracy"] <= m["clinical"]["accuracy"]["hi"]
    assert m["uncertainty"]["method"] == "tta" and m["uncertainty"]["passes"] == 3
    assert m["test_time_views"] == 3  # calibration and test scored as the mean of 3 views
    assert "mean of 3 test-time views per image" in (eval_dir / "classification_report.txt").read_text()
    assert 0 <= m["conformal"]["coverage"]["value"] <= 1
    for name in ("precision_recall.png", "reliability_calibrated.png", "referral.png", "roc.png", "reliability.png"):
        assert (eval_dir / name).is_file(), name
    rows = _rows(eval_dir / "predictions.csv")
    assert len(rows) == 24 and {"cal_prob_severe_infection", "decision", "prediction_set", "refer", "entropy"} <= set(rows[0])

    out = tmp_path / "pred"
    infer = ("--output_dir", str(run), "--input_path", str(ct_demo_dir / "Test.mat"), "--predictions_dir", str(out),
             *SMOKE[4:])
    run_bundle(bundle_config(TASK, "inference"), *infer, cwd=tmp_path)
    rows = _rows(out / "predictions.csv")
    assert len(rows) == 24 and {f"cal_prob_{n}" for n in NAMES} | {"prediction_set", "set_size", "refer"} <= set(rows[0])
    # the test split's calibrated probabilities again, from inference.json's 3 views: the same model, views, record
    evaluated = {r["id"]: r for r in _rows(eval_dir / "predictions.csv")}
    for r in rows:
        got = float(r["cal_prob_severe_infection"])
        assert got == pytest.approx(float(evaluated[r["id"]]["cal_prob_severe_infection"]), abs=2e-3), r["id"]

    # single passes are not what the record was fitted on: it is ignored, with a warning saying what to pass
    proc = run_bundle(bundle_config(TASK, "inference"), *infer, "--tta_views", "1", cwd=tmp_path)
    assert "refer" not in _rows(out / "predictions.csv")[0]
    assert "pass --tta_views 3" in proc.stdout + proc.stderr

    # a model file that is not the one calibrated: the record is ignored, with a warning
    record["model_sha256"] = "0" * 64
    (run / "models" / "calibration.json").write_text(json.dumps(record))
    proc = run_bundle(bundle_config(TASK, "inference"), *infer, cwd=tmp_path)
    assert "refer" not in _rows(out / "predictions.csv")[0]
    assert "another model" in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("option, words", [(("--threshold_rule", "best"), ("threshold_rule", "youden")),
                                           (("--tta_views", "11"), ("tta_views 11", "--tta_views 5"))])
def test_evaluate_bad_option_is_one_line(trained, ct_demo_dir, tmp_path, option, words):
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("eval", "inference", ".lock", "calibration.json"))
    proc = run_bundle(bundle_config(TASK, "train", "evaluate"), "--dataset_dir", str(ct_demo_dir), "--output_dir",
                      str(run), *SMOKE[2:], *option, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    assert all(w in last for w in words), proc.stderr[-2000:]
    assert not (run / "models" / "calibration.json").exists()
