"""scripts/benchmark_bundle_training.py: a bundle trained and evaluated as a user types it, figures and targets read
from its run folder. A smoke test on the tiny CT demo set: the report's consistency is checked, never its speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SMOKE
from helpers.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_bundle_training.py"


@pytest.mark.slow
def test_trains_evaluates_and_checks_the_targets(ct_demo_dir, tmp_path):
    out = tmp_path / "figures.json"
    run = tmp_path / "run"
    cmd = [sys.executable, str(SCRIPT), "--bundle", "ct_infection", "--dataset_dir", str(ct_demo_dir),
           "--output_dir", str(run), "--target-auc", "0.0", "--target-sensitivity", "severe_infection=1.01",
           "--out", str(out),
           "--", *SMOKE, "--batch_size", "16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["train"]["epochs"] == 2 and res["train"]["within_budget"] and res["train"]["wall_seconds"] > 0
    # each command's own peak memory (a training process holds torch and the network: far above 100 MB)
    assert res["train"]["peak_rss_mb"] > 100 and res["evaluate"]["peak_rss_mb"] > 100
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert res["test"]["accuracy"]["value"] == metrics["clinical"]["accuracy"]["value"]
    assert res["targets"]["macro AUC"]["met"] is True
    severe = metrics["clinical"]["per_class"]["severe_infection"]["sensitivity"]["value"]
    assert res["targets"]["severe_infection sensitivity"] == {"value": severe, "target": 1.01, "met": False}
    assert "severe_infection sensitivity >= 1.01" in proc.stdout and "NOT met" in proc.stdout


@pytest.mark.parametrize("argv, says", [
    (["--bundle", "nope", "--dataset_dir", "x"], "no bundles/nope/configs/train.json"),
    (["--dataset_dir", "x", "--skip-train"], "--skip-train needs --output_dir"),
    (["--dataset_dir", "x", "--target-sensitivity", "COVID-19"], "write CLASS=VALUE"),
])
def test_bad_arguments_are_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_script("benchmark_bundle_training").main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err.strip().splitlines()[-1]


def test_an_unknown_target_class_is_refused_before_training(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        load_script("benchmark_bundle_training").main(["--bundle", "ct_infection", "--dataset_dir", str(tmp_path),
                                                        "--output_dir", str(tmp_path / "r"),
                                                        "--target-sensitivity", "severe=0.9"])
    assert str(exit_.value) == ("--target-sensitivity severe: not a class of bundles/ct_infection (no_infection, "
                                "mild_infection, severe_infection); use one of those names")
    assert not (tmp_path / "r" / "benchmark_train.log").exists()  # nothing was started
