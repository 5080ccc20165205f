"""scripts/benchmark_training.py: the bundle/hand comparison runs in fresh processes and quotes their median ratio.

A smoke test of the method (tiny data, one timed epoch), never of the speed: the figures' consistency is checked,
not their values.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.scripts import load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_runs_in_processes_and_quotes_their_median(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark_training.py"), "--skip-demo-run", "--threads", "1",
           "--n-train", "96", "--batch-size", "16", "--warmup", "0", "--epochs", "3", "--processes", "3",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = json.loads(out.read_text())["benchmark"]
    ratios = [p["ratio"] for p in bench["processes"]]
    assert len(ratios) == 3 and all(r > 0 for r in ratios)
    assert bench["ratio"] == pytest.approx(statistics.median(ratios))
    assert bench["settings"]["iterations_per_epoch"] == 6 and bench["settings"]["timed_epochs"] == 3
    # the run's start, then epoch 2 began with a checkpoint, epoch 3 without; the bundle's 60 s is amortised over
    # the epochs between two checkpoints
    assert [s["checkpoint"] for s in bench["steps"] if s["new_epoch"]] == [False, True, False]
    bundle = bench["bundle"]
    assert bundle["checkpoint_seconds"] == 60 and 0 < bundle["checkpoints_per_epoch"] < 1
    assert bench["ratio_checkpoint_every_epoch"] >= bench["ratio"]
    assert "ratio per process" in proc.stdout and "median of the processes" in proc.stdout


def test_checkpoint_cost_is_amortised_over_the_interval():
    """Steps of 10 ms both sides, 4 per epoch; epoch ends cost 20 ms, or 120 ms with a checkpoint."""
    timing = load_script("training_timing")
    summarise = timing.summarise
    steps = []
    for epoch in range(4):
        for i in range(4):
            extra = 0.0 if i else (0.12 if epoch % 2 else 0.02)
            steps.append({"images": 8, "hand_images": 8, "new_epoch": i == 0, "checkpoint": i == 0 and epoch % 2 == 1,
                          "bundle_s": 0.01 + extra, "hand_s": 0.01, "bundle_cpu_s": 0.02, "hand_cpu_s": 0.02})
    every = summarise(steps, 4, 8, checkpoint_seconds=0)
    assert every["ratio"] == pytest.approx((0.01 + 0.12 / 4) / 0.01) == every["ratio_checkpoint_every_epoch"]
    # epochs of 4 x 10 + 20 = 60 ms: a checkpoint every ceil(1 / 0.06) = 17 epochs
    amortised = summarise(steps, 4, 8, checkpoint_seconds=1)
    assert amortised["bundle"]["checkpoints_per_epoch"] == pytest.approx(1 / 17)
    assert amortised["bundle"]["checkpoint_ms"] == pytest.approx(100)
    assert amortised["ratio"] == pytest.approx((0.01 + (0.02 + 0.1 / 17) / 4) / 0.01)
    assert amortised["ratio_checkpoint_every_epoch"] == pytest.approx(every["ratio"])
    # epochs longer than the interval: every epoch
    assert timing.checkpoints_per_epoch(60, 100) == 1 == timing.checkpoints_per_epoch(0, 1)


def test_profile_needs_one_process(capsys):
    module = load_script("benchmark_training")
    with pytest.raises(SystemExit) as exit_:
        module.parse_args(["--profile", "20"])  # three processes by default: the profile would be dropped
    assert exit_.value.code == 2 and "add --processes 1" in capsys.readouterr().err.strip().splitlines()[-1]
    assert module.parse_args(["--profile", "20", "--processes", "1"]).profile == 20
