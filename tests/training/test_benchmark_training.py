"""scripts/benchmark_training.py: the bundle/hand comparison runs in fresh processes and quotes their median ratio.

A smoke test of the method (tiny data, one timed epoch), never of the speed: the figures' consistency is checked,
not their values.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_runs_in_processes_and_quotes_their_median(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark_training.py"), "--skip-demo-run", "--threads", "1",
           "--n-train", "96", "--batch-size", "16", "--warmup", "0", "--epochs", "2", "--processes", "3",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = json.loads(out.read_text())["benchmark"]
    ratios = [p["ratio"] for p in bench["processes"]]
    assert len(ratios) == 3 and all(r > 0 for r in ratios)
    assert bench["ratio"] == pytest.approx(statistics.median(ratios))
    assert bench["settings"]["iterations_per_epoch"] == 6 and bench["settings"]["timed_epochs"] == 2
    assert "ratio per process" in proc.stdout and "median of the processes" in proc.stdout


def test_profile_needs_one_process(capsys):
    spec = importlib.util.spec_from_file_location("benchmark_training", REPO / "scripts" / "benchmark_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_:
        module.parse_args(["--profile", "20"])  # three processes by default: the profile would be dropped
    assert exit_.value.code == 2 and "add --processes 1" in capsys.readouterr().err.strip().splitlines()[-1]
    assert module.parse_args(["--profile", "20", "--processes", "1"]).profile == 20
