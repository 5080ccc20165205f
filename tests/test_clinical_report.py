"""medbundle.clinical_report through write_classification_report: intervals, calibration, conformal sets, referral."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers.report import _assert_png, _binary_case, _multiclass_case
from scipy.special import softmax

from medbundle.calibration import fit_calibration
from medbundle.report import write_classification_report


def _outputs(n, seed, c):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 1.5
    y = np.array([rng.choice(c, p=row) for row in softmax(z, axis=1)])
    return y, softmax(z * 3.0, axis=1)


@pytest.mark.parametrize("c", [2, 3])
def test_report_with_calibration_and_entropy(tmp_path, c):
    names = ["normal", "pneumonia"] if c == 2 else ["no", "mild", "severe"]
    yv, pv = _outputs(300, 0, c)
    yt, pt = _outputs(400, 1, c)
    rec = fit_calibration(yv, pv, names)
    entropy = np.random.default_rng(2).random(len(yt))
    out = tmp_path / "eval"
    m = write_classification_report(out, yt, pt, names, calibration=rec, entropy=entropy,
                                    uncertainty={"method": "tta", "passes": 8}, prevalence=0.2 if c == 2 else None)
    new = {"precision_recall.png", "reliability_calibrated.png", "referral.png"}
    assert new <= set(m["files"]) and {p.name for p in out.iterdir()} == set(m["files"])
    for name in new:
        _assert_png(out / name)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == m and "_curves" not in saved["uncertainty"]
    cal = saved["calibration"]
    assert cal["temperature"] == pytest.approx(rec["temperature"]) and cal["after"]["nll"] < cal["before"]["nll"]
    assert cal["after"]["ece"] < cal["before"]["ece"]
    conf = saved["conformal"]
    assert conf["coverage"]["value"] == pytest.approx(0.9, abs=0.05) and conf["coverage"]["lo"] < 0.9
    assert conf["target_coverage"] == pytest.approx(0.9) and conf["mean_set_size"] >= 1.0 - conf["empty_rate"]
    assert saved["uncertainty"]["method"] == "tta" and saved["uncertainty"]["passes"] == 8
    assert saved["clinical"]["accuracy"]["value"] == pytest.approx(saved["accuracy"])
    assert "Wilson" in saved["clinical"]["ci_methods"]["proportions"]
    binary = saved["clinical"]["binary"]
    if c == 2:
        assert binary["positive_class"] == "pneumonia" and binary["threshold"] == pytest.approx(rec["threshold"]["value"])
        assert binary["threshold_rule"] == "youden" and binary["at_prevalence"]["prevalence"] == 0.2
        assert binary["auc"]["value"] == pytest.approx(saved["auc_macro_ovr"])
    else:
        assert binary is None

    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols = list(rows[0])
    assert cols[: 6 + c] == ["id", "label", "label_name", "pred", "pred_name", "confidence"] + [f"prob_{n}" for n in names]
    assert [f"cal_prob_{n}" for n in names] == cols[6 + c: 6 + 2 * c]
    assert {"prediction_set", "set_size", "refer", "entropy"} <= set(cols) and ("decision" in cols) == (c == 2)
    assert sum(int(r["refer"]) for r in rows) == conf["n_refer"]
    for r in rows:
        assert int(r["set_size"]) == len([s for s in r["prediction_set"].split("|") if s])

    text = (out / "classification_report.txt").read_text()
    for needle in ("95% confidence intervals", "Wilson", "DeLong", "temperature T =", "coverage", "referral by entropy",
                   "before", "after"):
        assert needle in text, needle
    assert ("binary decision: pneumonia" in text) == (c == 2)


def test_report_without_calibration_gains_intervals_only(tmp_path):
    y, p = _binary_case()
    m = write_classification_report(tmp_path / "r", y, p, ["neg", "pos"])
    assert set(m["files"]) == {"metrics.json", "classification_report.txt", "confusion_matrix.png", "roc.png",
                               "reliability.png", "predictions.csv"}
    assert m["calibration"] is None and m["conformal"] is None
    assert m["clinical"]["binary"]["decision"] == "argmax" and m["clinical"]["binary"]["counts"]["tp"] == 3
    assert m["uncertainty"]["method"] == "single pass"
    y4, p4 = _multiclass_case()
    m4 = write_classification_report(tmp_path / "m", y4, p4, ["a", "b", "c", "d"], positive_class="b")
    assert m4["clinical"]["binary"]["positive_class"] == "b"
    assert m4["clinical"]["auc_macro_ovr"]["lo"] < m4["auc_macro_ovr"] < m4["clinical"]["auc_macro_ovr"]["hi"]
