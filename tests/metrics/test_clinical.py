"""medbundle.metrics.clinical: sensitivity, specificity, PPV, NPV, F1, accuracy, AUC with intervals."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.report import _binary_case, _multiclass_case

from medbundle.metrics import (
    classification_metrics,
    clinical_statistics,
    decision_statistics,
    predictive_values_at_prevalence,
    wilson_interval,
)
from medbundle.metrics.clinical import f1_with_ci


def test_decision_statistics_counts_and_intervals():
    y, p = _binary_case()  # threshold 0.5: TP=3 FN=1 FP=2 TN=4
    out = decision_statistics(y == 1, p[:, 1] >= 0.5, p[:, 1])
    assert out["counts"] == {"tp": 3, "fp": 2, "fn": 1, "tn": 4}
    assert out["sensitivity"]["value"] == pytest.approx(0.75)
    assert (out["sensitivity"]["lo"], out["sensitivity"]["hi"]) == pytest.approx(wilson_interval(3, 4))
    assert out["specificity"]["value"] == pytest.approx(4 / 6) and out["ppv"]["value"] == pytest.approx(3 / 5)
    assert out["npv"]["value"] == pytest.approx(4 / 5) and out["accuracy"]["value"] == pytest.approx(0.7)
    assert out["f1"]["value"] == pytest.approx(6 / 9)
    assert out["auc"]["value"] == pytest.approx(20 / 24) and out["auc"]["method"] == "delong"
    assert out["at_prevalence"] is None
    for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1"):
        assert out[key]["lo"] <= out[key]["value"] <= out[key]["hi"], key


def test_f1_interval_is_the_mapped_jaccard_interval_and_covers():
    lo, hi = wilson_interval(30, 30 + 5 + 7)
    out = f1_with_ci(30, 5, 7)
    assert out["lo"] == pytest.approx(2 * lo / (1 + lo)) and out["hi"] == pytest.approx(2 * hi / (1 + hi))
    assert f1_with_ci(0, 0, 0)["value"] is None
    # multinomial cells: coverage of the population F1 about 95 %
    rng = np.random.default_rng(0)
    cells = np.array([0.25, 0.08, 0.1, 0.57])  # tp, fp, fn, tn
    truth = 2 * cells[0] / (2 * cells[0] + cells[1] + cells[2])
    hits = sum(
        (lambda r: r["lo"] <= truth <= r["hi"])(f1_with_ci(*rng.multinomial(150, cells)[:3])) for _ in range(400)
    )
    assert 0.92 <= hits / 400 <= 0.98


def test_predictive_values_at_prevalence():
    # at the sample prevalence Bayes' rule gives the sample PPV / NPV
    out = predictive_values_at_prevalence(tp=3, fn=1, tn=4, fp=2, prevalence=0.4)
    assert out["ppv"]["value"] == pytest.approx(3 / 5) and out["npv"]["value"] == pytest.approx(4 / 5)
    rare = predictive_values_at_prevalence(tp=90, fn=10, tn=180, fp=20, prevalence=0.01)
    se, sp = 0.9, 0.9
    assert rare["ppv"]["value"] == pytest.approx(0.01 * se / (0.01 * se + 0.99 * (1 - sp)))
    assert rare["ppv"]["lo"] < rare["ppv"]["value"] < rare["ppv"]["hi"] < 0.2
    assert rare["npv"]["value"] > 0.99 and rare["method"] == "mercaldo_logit"
    # zero cells still give finite intervals
    perfect = predictive_values_at_prevalence(tp=20, fn=0, tn=20, fp=0, prevalence=0.1)
    assert perfect["ppv"]["value"] == 1.0 and 0 < perfect["ppv"]["lo"] < 1
    with pytest.raises(ValueError, match="prevalence"):
        predictive_values_at_prevalence(1, 1, 1, 1, prevalence=1.5)


def test_clinical_statistics_agree_with_classification_metrics():
    y, p = _multiclass_case()
    names = ["a", "b", "c", "d"]
    cs, cm = clinical_statistics(y, p, names), classification_metrics(y, p, names)
    assert cs["accuracy"]["value"] == pytest.approx(cm["accuracy"])
    assert cs["auc_macro_ovr"]["value"] == pytest.approx(cm["auc_macro_ovr"])
    for name in names:
        for key in ("sensitivity", "specificity", "ppv", "npv", "auc"):
            assert cs["per_class"][name][key]["value"] == pytest.approx(cm["per_class"][name][key]), (name, key)
        assert cs["per_class"][name]["f1"]["value"] == pytest.approx(cm["per_class"][name]["f1"])
    assert cs["binary"] is None and cs["ci_level"] == 0.95
    assert {"proportions", "f1", "auc", "auc_macro_ovr", "ppv_npv_at_prevalence"} <= set(cs["ci_methods"])


def test_clinical_statistics_binary_threshold_and_prevalence():
    y, p = _binary_case()
    cs = clinical_statistics(y, p, ["neg", "pos"], positive_class=1, threshold=0.58)
    b = cs["binary"]
    assert b["positive_class"] == "pos" and b["threshold"] == 0.58
    assert b["counts"] == {"tp": 3, "fp": 1, "fn": 1, "tn": 5}  # 0.6 called positive, 0.55 not
    assert b["prevalence_source"] == "test set" and b["at_prevalence"]["prevalence"] == pytest.approx(0.4)
    assert cs["auc_macro_ovr"]["value"] == pytest.approx(20 / 24)
    given = clinical_statistics(y, p, ["neg", "pos"], positive_class=1, threshold=0.58, prevalence=0.05)["binary"]
    assert given["prevalence_source"] == "given" and given["at_prevalence"]["ppv"]["value"] < b["ppv"]["value"]
    # the threshold may apply to other (calibrated) probabilities; AUC stays that of probs
    shifted = np.clip(p + np.array([-0.1, 0.1]), 0, 1)
    other = clinical_statistics(y, p, ["neg", "pos"], positive_class=1, threshold=0.58, threshold_probs=shifted)
    assert other["binary"]["n_called_positive"] > b["n_called_positive"]
    assert other["binary"]["auc"]["value"] == pytest.approx(20 / 24)
    argmax = clinical_statistics(y, p, ["neg", "pos"], positive_class=1)["binary"]
    assert argmax["decision"] == "argmax" and argmax["counts"]["tp"] == 3
