"""medbundle.metrics.classification: classification_metrics against hand-computed values and sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.report import _binary_case, _multiclass_case

from medbundle.metrics import classification_metrics


def test_perfect_predictions():
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[y] * 0.9 + 0.1 / 3
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == 1.0
    assert m["balanced_accuracy"] == 1.0
    assert m["macro_f1"] == 1.0 and m["weighted_f1"] == 1.0
    assert m["auc_macro_ovr"] == 1.0
    assert m["cohen_kappa"] == pytest.approx(1.0)
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert m["n"] == 6 and m["n_classes"] == 3 and m["class_names"] == ["a", "b", "c"]
    for name in "abc":
        pc = m["per_class"][name]
        assert pc["auc"] == 1.0
        for key in ("precision", "recall", "f1", "sensitivity", "specificity", "ppv", "npv"):
            assert pc[key] == 1.0, key
        assert pc["support"] == 2


def test_binary_hand_computed():
    y, probs = _binary_case()
    m = classification_metrics(y, probs, ["neg", "pos"])
    pos, neg = m["per_class"]["pos"], m["per_class"]["neg"]
    assert m["confusion_matrix"] == [[4, 2], [1, 3]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert pos["sensitivity"] == pytest.approx(3 / 4)
    assert pos["specificity"] == pytest.approx(4 / 6)
    assert pos["ppv"] == pytest.approx(3 / 5)
    assert pos["npv"] == pytest.approx(4 / 5)
    assert pos["precision"] == pytest.approx(3 / 5) and pos["recall"] == pytest.approx(3 / 4)
    assert pos["f1"] == pytest.approx(2 / 3)
    # the negative class is the mirror image
    assert neg["sensitivity"] == pytest.approx(4 / 6) and neg["specificity"] == pytest.approx(3 / 4)
    assert neg["ppv"] == pytest.approx(4 / 5) and neg["npv"] == pytest.approx(3 / 5)
    assert neg["f1"] == pytest.approx(8 / 11)
    # 20 of the 24 (positive, negative) pairs are ranked correctly
    assert m["auc_macro_ovr"] == pytest.approx(20 / 24)
    assert pos["auc"] == pytest.approx(20 / 24) and neg["auc"] == pytest.approx(20 / 24)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 8 / 11) / 2)
    assert m["weighted_f1"] == pytest.approx((4 * 2 / 3 + 6 * 8 / 11) / 10)
    # p_o = 0.7, p_e = 0.5*0.4 + 0.5*0.6 = 0.5 -> kappa 0.4
    assert m["cohen_kappa"] == pytest.approx(0.4)
    assert m["macro_avg"]["support"] == 10 and m["weighted_avg"]["f1"] == pytest.approx(m["weighted_f1"])


def test_multiclass_matches_sklearn():
    from sklearn.metrics import classification_report, roc_auc_score

    y, probs = _multiclass_case()
    names = ["w", "x", "y", "z"]
    m = classification_metrics(y, probs, names)
    assert m["auc_macro_ovr"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    ref = classification_report(y, probs.argmax(1), target_names=names, output_dict=True, zero_division=0)
    for name in names:
        for key, ref_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert m["per_class"][name][key] == pytest.approx(ref[name][ref_key])
    for ours, theirs in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        assert m[ours]["f1"] == pytest.approx(ref[theirs]["f1-score"])
        assert m[ours]["precision"] == pytest.approx(ref[theirs]["precision"])
    json.dumps(m, allow_nan=False)  # JSON-ready


def test_absent_class_gives_null_auc():
    # class "c" never occurs in y_true (but is predicted once)
    y = np.array([0, 0, 1, 1, 0, 1])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.4, 0.5, 0.1]]
    )
    m = classification_metrics(y, probs, ["a", "b", "c"])
    text = json.dumps(m, allow_nan=False)
    assert '"auc": null' in text
    c = m["per_class"]["c"]
    assert c["auc"] is None and c["sensitivity"] is None and c["support"] == 0
    assert c["ppv"] == 0.0 and c["specificity"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"][2] == [0, 0, 0]
    # macro OvR AUC over the present classes a and b
    assert m["auc_macro_ovr"] == pytest.approx(np.mean([m["per_class"]["a"]["auc"], m["per_class"]["b"]["auc"]]))
    assert m["balanced_accuracy"] == pytest.approx(((2 / 3) + 1.0) / 2)


def test_single_class_present_does_not_crash():
    y = np.zeros(5, dtype=int)
    probs = np.tile([0.7, 0.2, 0.1], (5, 1))
    m = classification_metrics(y, probs, ["a", "b", "c"])
    json.dumps(m, allow_nan=False)
    assert m["accuracy"] == 1.0 and m["auc_macro_ovr"] is None
    assert m["per_class"]["a"]["specificity"] is None
    # 2 classes, only negatives: binary AUC undefined
    m2 = classification_metrics(np.zeros(3, dtype=int), np.tile([0.6, 0.4], (3, 1)), ["neg", "pos"])
    assert m2["auc_macro_ovr"] is None


@pytest.mark.parametrize(
    "y, probs, names",
    [
        (np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a"]),  # wrong number of names
        (np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"]),  # length mismatch
        (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"]),  # label out of range
        (np.array([0, 1]), np.array([[np.nan, 0.5], [0.5, 0.5]]), ["a", "b"]),  # NaN probability
        (np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "a"]),  # duplicate names
        (np.array([0.5, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"]),  # non-integer label
    ],
)
def test_invalid_inputs_raise(y, probs, names):
    with pytest.raises(ValueError):
        classification_metrics(y, probs, names)
