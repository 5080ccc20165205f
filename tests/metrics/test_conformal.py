"""medbundle.metrics.conformal: split conformal prediction sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax

from medbundle.metrics import conformal_quantile, conformal_summary, prediction_sets


def _data(rng, n, c=4):
    z = rng.normal(size=(n, c)) * 1.3
    y = np.array([rng.choice(c, p=row) for row in softmax(z, axis=1)])
    return y, softmax(z * 1.5, axis=1)  # a miscalibrated model: conformal must not care


def test_quantile_level_is_the_finite_sample_one():
    scores_p = np.linspace(0.05, 0.95, 19)
    p = np.stack([scores_p, 1 - scores_p], axis=1)
    y = np.zeros(19, int)  # scores 1 - p = 0.95 ... 0.05
    q = conformal_quantile(y, p, alpha=0.1)
    k = math.ceil(20 * 0.9)  # the 18th smallest score
    assert q["level"] == pytest.approx(k / 19) and q["qhat"] == pytest.approx(np.sort(1 - scores_p)[k - 1])
    few = conformal_quantile(y[:8], p[:8], alpha=0.1)  # ceil(9 * 0.9) / 8 > 1
    assert few["qhat"] == 1.0 and prediction_sets(p[:8], few["qhat"]).all()
    with pytest.raises(ValueError, match="conformal_alpha"):
        conformal_quantile(y, p, alpha=0)


def test_marginal_coverage_is_at_least_the_target():
    rng = np.random.default_rng(0)
    cover, sizes = [], []
    for _ in range(150):
        yc, pc = _data(rng, 100)
        yt, pt = _data(rng, 400)
        q = conformal_quantile(yc, pc, alpha=0.1)["qhat"]
        s = conformal_summary(yt, prediction_sets(pt, q))
        cover.append(s["coverage"]["value"])
        sizes.append(s["mean_set_size"])
    # E[coverage] lies in [1 - alpha, 1 - alpha + 1/(n+1)]
    assert 0.895 <= np.mean(cover) <= 0.92, np.mean(cover)
    assert 1.0 < np.mean(sizes) < 4.0


def test_summary_sets_and_referral():
    y = np.array([0, 1, 2, 0])
    sets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]], bool)
    s = conformal_summary(y, sets)
    assert s["coverage"]["value"] == 0.5 and s["coverage"]["method"] == "wilson"
    assert s["mean_set_size"] == 1.0 and s["set_size_counts"] == {"0": 1, "1": 2, "2": 1, "3": 0}
    assert s["n_refer"] == 2 and s["refer_rate"] == 0.5 and s["empty_rate"] == 0.25
    assert s["accuracy_singletons"] == 0.5
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    np.testing.assert_array_equal(prediction_sets(p, 0.65), [[1, 0, 0], [1, 1, 0]])
