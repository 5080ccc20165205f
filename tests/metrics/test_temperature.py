"""medbundle.metrics.temperature: temperature scaling and ECE / MCE / Brier / NLL."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import brier_score_loss, log_loss

from medbundle.metrics import apply_temperature, calibration_summary, expected_calibration_error, fit_temperature


def _overconfident(n, t_true=2.5, seed=0, c=3):
    """Labels drawn from softmax(z); the model reports softmax(z * t_true): its best temperature is t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 1.5
    truth = softmax(z, axis=1)
    y = np.array([rng.choice(c, p=row) for row in truth])
    return y, softmax(z * t_true, axis=1)


def test_fit_recovers_the_temperature_and_improves_calibration():
    y, p = _overconfident(4000)
    t = fit_temperature(y, p)
    assert t == pytest.approx(2.5, rel=0.1)
    before, after = calibration_summary(y, p), calibration_summary(y, apply_temperature(p, t))
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"] / 2 and after["brier"] < before["brier"]
    # applied unchanged to new data from the same model it still helps
    y2, p2 = _overconfident(2000, seed=1)
    assert expected_calibration_error(y2, apply_temperature(p2, t)) < expected_calibration_error(y2, p2) / 2


def test_apply_keeps_argmax_and_identity_at_one():
    y, p = _overconfident(200)
    np.testing.assert_allclose(apply_temperature(p, 1.0), p, atol=1e-9)
    for t in (0.3, 4.0):
        q = apply_temperature(p, t)
        np.testing.assert_array_equal(q.argmax(1), p.argmax(1))
        np.testing.assert_allclose(q.sum(1), 1.0)
    assert apply_temperature(p, 50.0).max() < 0.5  # very soft
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(p, 0.0)


def test_summary_matches_sklearn():
    y, p = _overconfident(300)
    s = calibration_summary(y, p)
    assert s["brier"] == pytest.approx(brier_score_loss(y, p, labels=[0, 1, 2]))
    assert s["nll"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2]))
    assert s["ece"] == pytest.approx(expected_calibration_error(y, p)) and s["mce"] >= s["ece"]
    yb = (y == 0).astype(int)  # two classes: "class 0" (1) against the rest (0)
    pb = np.stack([1 - p[:, 0], p[:, 0]], axis=1)
    assert calibration_summary(yb, pb)["brier"] == pytest.approx(brier_score_loss(yb, p[:, 0]))


def test_underconfident_model_gets_t_below_one():
    y, p = _overconfident(3000, t_true=0.5, seed=2)
    assert fit_temperature(y, p) == pytest.approx(0.5, rel=0.12)
