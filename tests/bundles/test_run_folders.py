"""Run folders through ``monai.bundle``: a run rebuilds itself from its record, a command contradicting the record
stops, a failed start-up keeps the old record, and one writer per run folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import pytest
from conftest import SMOKE, bundle_config, run_bundle

TASK = "ct_infection"


def predictions(folder):
    with open(folder / "predictions.csv", newline="") as f:
        return [{k: v for k, v in r.items()} for r in csv.DictReader(f)]


def last_line(proc) -> str:
    return [line for line in proc.stderr.splitlines() if line.strip()][-1]


@pytest.mark.slow
def test_inference_rebuilds_the_run_and_refuses_contradictions(trained, ct_demo_dir, tmp_path):
    """The run trained at 32 px with small features: inference without options runs it as trained."""
    common = ("--input_path", str(ct_demo_dir / "Test.mat"), "--output_dir", str(trained))
    run_bundle(bundle_config(TASK, "inference"), *common, "--predictions_dir", str(tmp_path / "given"), *SMOKE[4:],
               cwd=tmp_path)
    run_bundle(bundle_config(TASK, "inference"), *common, "--predictions_dir", str(tmp_path / "rebuilt"), cwd=tmp_path)
    given, rebuilt = predictions(tmp_path / "given"), predictions(tmp_path / "rebuilt")
    assert len(rebuilt) == 24 and rebuilt == given
    for option, value, trained_value in (("--spatial_size", "[64, 64]", "[32, 32]"),
                                         ("--network_def#features", "[8, 16, 16, 32, 64]", "[8, 16, 16, 32, 32]")):
        proc = run_bundle(bundle_config(TASK, "inference"), *common, "--predictions_dir", str(tmp_path / "no"),
                          option, value, cwd=tmp_path, check=False)
        assert proc.returncode != 0
        line = last_line(proc)
        assert option[2:] in line and value in line and trained_value in line and str(trained) in line, line
    assert not (tmp_path / "no" / "predictions.csv").exists()


@pytest.mark.slow
def test_failed_start_up_keeps_the_record_of_the_finished_run(trained, tmp_path):
    before = (trained / "run.json").read_bytes()
    proc = run_bundle(bundle_config(TASK, "train"), "--dataset_dir", str(tmp_path / "no_such_data"),
                      "--output_dir", str(trained), *SMOKE, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert (trained / "run.json").read_bytes() == before
    assert not (trained / ".lock").exists()


@pytest.mark.slow
def test_two_runs_into_one_folder(ct_demo_dir, tmp_path):
    """A second train (or evaluate) into a folder a live run writes to stops at once, naming the folder and pid."""
    out = tmp_path / "run"
    release = tmp_path / "release"
    overlay = tmp_path / "hold.json"  # the first run waits after epoch 1 until the test releases it
    overlay.write_text(json.dumps({
        "release_file": "",
        "run": [
            "$@train#trainer.add_event_handler(ignite.engine.Events.EPOCH_COMPLETED(once=1), lambda engine: "
            "[time.sleep(0.2) for _ in range(1500) if not os.path.exists(@release_file)])",
            "$@train#trainer.run()",
        ],
    }))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", bundle_config(TASK, "train", str(overlay)),
           "--dataset_dir", str(ct_demo_dir), "--output_dir", str(out), *SMOKE[2:], "--epochs", "3",
           "--release_file", str(release)]
    errors = open(tmp_path / "first.err", "w")  # a file, not a pipe: a pipe nobody reads can fill and block it
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors, text=True, cwd=tmp_path)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None:
            try:
                if json.loads((out / ".lock").read_text())["pid"] == first.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended before the second could start"
        for configs in (("train",), ("train", "evaluate")):
            second = run_bundle(bundle_config(TASK, *configs), "--dataset_dir", str(ct_demo_dir), "--output_dir",
                                str(out), *SMOKE[2:], cwd=tmp_path, check=False)
            assert second.returncode != 0, second.stdout[-2000:]
            line = last_line(second)
            assert str(out) in line and f"pid {first.pid}" in line, line
        assert first.poll() is None
        release.touch()
        first.wait(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        errors.close()
    assert first.returncode == 0, (tmp_path / "first.err").read_text()[-3000:]
    with open(out / "train_log.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    assert json.loads((out / "run.json").read_text())["settings"]["spatial_size"] == [32, 32]
    assert not (out / ".lock").exists()
