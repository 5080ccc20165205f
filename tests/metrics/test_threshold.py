"""medbundle.metrics.threshold: the operating threshold chosen on validation data."""

from __future__ import annotations

import numpy as np
import pytest

from medbundle.metrics import choose_threshold
from medbundle.metrics.threshold import parse_threshold_rule


def _val(seed=0, n=300):
    rng = np.random.default_rng(seed)
    pos = rng.random(n) < 0.4
    score = 1 / (1 + np.exp(-(rng.normal(size=n) * 1.2 + 2.0 * pos - 1.0)))
    return pos, score


def test_youden_maximises_j_over_every_threshold():
    pos, score = _val()
    out = choose_threshold(pos, score)
    best = max(np.mean(score[pos] >= t) + np.mean(score[~pos] < t) - 1 for t in np.unique(score))
    assert out["youden_j"] == pytest.approx(best)
    assert out["rule"] == "youden" and out["n"] == len(pos)
    # halfway between two validation scores: the same validation decisions, no score exactly on it
    assert not np.any(score == out["value"])


def test_target_sensitivity_and_specificity():
    pos, score = _val()
    sens = choose_threshold(pos, score, "sensitivity:0.95")
    assert sens["sensitivity"] >= 0.95
    # the most specific threshold reaching the target: one score higher loses it
    higher = np.sort(score[score >= sens["value"]])[0]
    assert np.mean(score[pos] > higher) < 0.95
    spec = choose_threshold(pos, score, "Specificity:0.9")
    assert spec["specificity"] >= 0.9 and spec["rule"] == "specificity:0.9"
    assert spec["value"] > sens["value"]
    fixed = choose_threshold(pos, score, "fixed:0.5")
    assert fixed["value"] == 0.5 and fixed["sensitivity"] == pytest.approx(np.mean(score[pos] >= 0.5))


def test_threshold_applies_unchanged_to_new_data():
    pos, score = _val(0)
    thr = choose_threshold(pos, score, "sensitivity:0.9")["value"]
    test_pos, test_score = _val(1, 3000)
    assert np.mean(test_score[test_pos] >= thr) == pytest.approx(0.9, abs=0.05)


def test_bad_rules_and_one_class():
    for bad in ("youdn", "sensitivity", "sensitivity:1.5", "sensitivity:x", "youden:0.3"):
        with pytest.raises(ValueError, match="threshold_rule"):
            parse_threshold_rule(bad)
    with pytest.raises(ValueError, match="only one"):
        choose_threshold([1, 1, 1], [0.2, 0.5, 0.9])
    assert choose_threshold([1, 1, 1], [0.2, 0.5, 0.9], "fixed:0.4")["sensitivity"] == pytest.approx(2 / 3)
