"""medbundle.metrics.referral: predictive entropy and accuracy against referral rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medbundle.metrics import predictive_entropy, referral_curve


def test_entropy_bounds():
    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(predictive_entropy(p), [0.0, math.log(3), math.log(2)], atol=1e-12)


def test_referral_curve_with_an_informative_and_an_useless_uncertainty():
    correct = np.array([1] * 8 + [0] * 2, bool)
    good = np.r_[np.linspace(0, 0.5, 8), [0.9, 0.8]]  # the errors are the most uncertain
    out = referral_curve(correct, good, rates=[0.0, 0.1, 0.2, 0.5])
    assert out["accuracy_kept"] == pytest.approx([0.8, 8 / 9, 1.0, 1.0])
    assert out["n_kept"] == [10, 9, 8, 5]
    bad = -good  # the errors are the most certain: referral only removes right answers
    assert referral_curve(correct, bad, rates=[0.0, 0.5])["accuracy_kept"] == pytest.approx([0.8, 0.6])
    full = out["curve"]
    assert len(full["referral_rate"]) == 10 and full["accuracy_kept"][0] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        referral_curve(correct, good[:5])
