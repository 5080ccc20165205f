"""Precision-recall, reliability before / after, referral plots, and operating points on the ROC."""

from __future__ import annotations

import numpy as np
from helpers.report import _assert_png, _binary_case, _multiclass_case

from medbundle.metrics import apply_temperature
from medbundle.plots import plot_precision_recall, plot_referral, plot_reliability_comparison, plot_roc


def test_precision_recall_and_roc_with_operating_points(tmp_path):
    y, p = _binary_case()
    plot_precision_recall(y, p, ["neg", "pos"], tmp_path / "pr.png", operating_points={1: (0.75, 0.6)})
    plot_roc(y, p, ["neg", "pos"], tmp_path / "roc.png", operating_points={1: (1 / 3, 0.75)})
    y4, p4 = _multiclass_case()
    plot_precision_recall(y4, p4, list("abcd"), tmp_path / "pr4.png")
    # a class absent from y_true: drawn without a curve
    plot_precision_recall(np.array([0, 0, 1]), np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]),
                          list("abc"), tmp_path / "pr_absent.png")
    for name in ("pr.png", "roc.png", "pr4.png", "pr_absent.png"):
        _assert_png(tmp_path / name)


def test_reliability_comparison_and_referral(tmp_path):
    y, p = _multiclass_case()
    out = plot_reliability_comparison(y, p, apply_temperature(p, 0.5), tmp_path / "rel.png", temperature=0.5)
    assert set(out) == {"before", "after"} and out["before"]["ece"] != out["after"]["ece"]
    _assert_png(tmp_path / "rel.png")
    rates = np.linspace(0, 0.9, 50)
    plot_referral({"by entropy": (rates, 0.8 + 0.2 * rates)}, tmp_path / "ref.png",
                  points={"conformal sets": (0.3, 0.93)})
    _assert_png(tmp_path / "ref.png")
