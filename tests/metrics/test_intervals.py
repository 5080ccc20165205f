"""medbundle.metrics.intervals: Wilson intervals for proportions, DeLong intervals for AUC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from medbundle.metrics import delong_auc, delong_macro_auc, proportion_with_ci, wilson_interval


def _wilson_formula(k, n, z=norm.ppf(0.975)):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(8, 10), (0, 12), (12, 12), (81, 263)])
def test_wilson_matches_the_closed_form(k, n):
    lo, hi = wilson_interval(k, n)
    assert (lo, hi) == pytest.approx(_wilson_formula(k, n), abs=1e-9)
    d = proportion_with_ci(k, n)
    assert d["value"] == pytest.approx(k / n) and d["lo"] == lo and d["method"] == "wilson"


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (None, None)
    assert proportion_with_ci(0, 0)["value"] is None
    with pytest.raises(ValueError):
        wilson_interval(5, 4)
    narrow, wide = wilson_interval(80, 100, 0.90), wilson_interval(80, 100, 0.99)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]


def _delong_bruteforce(pos, score):
    """DeLong's variance from its definition: pairwise comparisons (ties count 1/2)."""
    x, y = score[pos], score[~pos]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), np.var(v10, ddof=1) / len(x) + np.var(v01, ddof=1) / len(y)


def test_delong_matches_definition_and_sklearn_with_ties():
    rng = np.random.default_rng(3)
    pos = rng.random(70) < 0.4
    score = np.round(rng.normal(size=70) + pos, 1)  # rounded: many ties
    out = delong_auc(pos, score)
    auc, var = _delong_bruteforce(pos, score)
    assert out["value"] == pytest.approx(auc) == pytest.approx(roc_auc_score(pos, score))
    assert out["se"] == pytest.approx(math.sqrt(var))
    z = norm.ppf(0.975)
    assert (out["lo"], out["hi"]) == pytest.approx((auc - z * math.sqrt(var), auc + z * math.sqrt(var)))
    assert out["method"] == "delong" and out["n_positive"] == pos.sum()


def test_delong_interval_covers_the_true_auc():
    """Binormal model, true AUC = Phi(d / sqrt(2)); the 95 % interval covers it in about 95 % of samples."""
    rng = np.random.default_rng(0)
    d = 1.0
    true_auc = norm.cdf(d / math.sqrt(2))
    hits = 0
    reps = 400
    for _ in range(reps):
        pos = np.r_[np.ones(40, bool), np.zeros(60, bool)]
        score = rng.normal(size=100) + d * pos
        out = delong_auc(pos, score)
        hits += out["lo"] <= true_auc <= out["hi"]
    assert 0.92 <= hits / reps <= 0.98, hits / reps


def test_delong_edge_cases():
    sep = delong_auc([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert sep["value"] == 1.0 and sep["degenerate"] and sep["lo"] == sep["hi"] == 1.0
    one = delong_auc([1, 1, 1], [0.1, 0.2, 0.3])
    assert one["value"] is None and one["lo"] is None
    single = delong_auc([1, 0, 0, 0], [0.9, 0.2, 0.1, 0.95])
    assert single["value"] == pytest.approx(2 / 3) and single["lo"] is None
    with pytest.raises(ValueError):
        delong_auc([1, 0], [0.5, np.nan])


def test_macro_auc_reduces_to_delong_for_one_class():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s = rng.normal(size=80) + y
    p = np.stack([1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))], axis=1)
    macro, single = delong_macro_auc(y, p, classes=[1]), delong_auc(y == 1, p[:, 1])
    assert macro["value"] == pytest.approx(single["value"]) and macro["se"] == pytest.approx(single["se"])


def _three_class(rng, n):
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def test_macro_auc_value_and_coverage():
    rng = np.random.default_rng(2)
    y_big, p_big = _three_class(rng, 60000)
    truth = np.mean([roc_auc_score(y_big == k, p_big[:, k]) for k in range(3)])
    y, p = _three_class(rng, 90)
    out = delong_macro_auc(y, p)
    assert out["value"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert out["classes"] == [0, 1, 2] and out["method"] == "delong_macro"
    reps, hits = 300, 0
    for _ in range(reps):
        y, p = _three_class(rng, 90)
        out = delong_macro_auc(y, p)
        hits += out["lo"] <= truth <= out["hi"]
    assert 0.92 <= hits / reps <= 0.985, hits / reps


def test_macro_auc_skips_absent_classes():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.4, 0.5, 0.1]])
    out = delong_macro_auc(y, p)
    assert out["classes"] == [0, 1]
    assert delong_macro_auc(np.zeros(4, int), np.full((4, 2), 0.5))["value"] is None
