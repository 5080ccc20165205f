"""Explanations through the bundle: explain.json over inference.json, the command line, TensorBoard Grad-CAM."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import REPO, SMOKE, bundle_config, export_pngs, run_bundle

METHODS = ("gradcam", "gradcampp", "occlusion", "integrated_gradients")


@pytest.mark.slow
def test_explain_json_on_demo_data_with_masks(trained, ct_demo_dir, tmp_path):
    out = tmp_path / "explain"
    run_bundle(bundle_config("ct_infection", "inference", "explain"), "--output_dir", str(trained),
               "--input_path", str(ct_demo_dir / "Test.mat"), "--explain_dir", str(out), *SMOKE[4:], cwd=tmp_path)
    with open(out / "explanations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and {"id", "label", "pred", "confidence"} <= set(rows[0])
    for m in METHODS:
        for col in ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "auprc", "spillover",
                    "deletion_auc", "insertion_auc"):
            assert f"{m}_{col}" in rows[0], (m, col)
        for name in ("grid.png", "mean_maps.png"):
            assert (out / "pictures" / m / name).is_file()
        assert len(list((out / "pictures" / m).glob("Test.mat_*.png"))) >= 3
    # lesion-free images have no localisation score; lesion images do
    assert {r["gradcam_pointing_game"] for r in rows if r["label"] == "no_infection"} == {"nan"}
    assert all(r["gradcam_pointing_game"] in ("0.0", "1.0") for r in rows if r["label"] != "no_infection")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 24 and set(summary["methods"]) == set(METHODS)
    assert 0 <= summary["random_baseline_localisation"]["pointing_game"]["mean"] <= 1
    gradcam = summary["methods"]["gradcam"]
    assert {"per_image_summary", "attention", "stability", "randomisation"} <= set(gradcam)
    assert gradcam["stability"]["ssim_win_size"] and len(gradcam["stability"]["levels"]) == 4
    assert len(gradcam["randomisation"]["layers"]) == len(gradcam["randomisation"]["spearman"]) > 3
    assert set(gradcam["attention"]["per_class"]) <= {"no_infection", "mild_infection", "severe_infection"}


@pytest.mark.slow
def test_explain_command_on_a_folder(trained, ct_demo_dir, tmp_path):
    """``python -m medbundle.explain`` on unlabelled PNGs (no masks: no localisation columns)."""
    folder, _ = export_pngs(ct_demo_dir / "Test.mat", tmp_path / "pngs", 3, prefix="s")
    out = tmp_path / "explain"
    proc = subprocess.run(
        [sys.executable, "-m", "medbundle.explain", str(REPO / "bundles" / "ct_infection"), "--input_path", str(folder),
         "--output_dir", str(trained), "--explain_dir", str(out), "--explain_methods", "['gradcam', 'occlusion']",
         *SMOKE[4:]],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "explanations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["s0.png", "s1.png", "s2.png"]
    assert "gradcam_deletion_auc" in rows[0] and "gradcam_pointing_game" not in rows[0]
    assert "explain" in proc.stderr  # the progress bar


@pytest.mark.slow
def test_tensorboard_gets_gradcam_overlays(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "gradcam/validation" in events.Tags()["images"]
    assert len(events.Images("gradcam/validation")) == 2  # one grid per epoch
