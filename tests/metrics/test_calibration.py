"""medbundle.metrics.calibration: expected calibration error (and its reliability diagram)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.report import _assert_png

from medbundle.metrics import expected_calibration_error
from medbundle.plots import plot_reliability_diagram


def test_ece_perfectly_calibrated_is_zero():
    # 10 samples at confidence 0.8 with 8 correct, 10 samples at confidence 0.6 with 6 correct
    probs = np.array([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 10)
    y = np.array([0] * 8 + [1] * 2 + [1] * 6 + [0] * 4)
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_known_miscalibration(tmp_path):
    # 4 samples at confidence 0.95 with 2 correct (gap 0.45, overconfident)
    # 6 samples at confidence 0.65 all correct (gap 0.35, underconfident)
    probs = np.array([[0.95, 0.05]] * 4 + [[0.35, 0.65]] * 6)
    y = np.array([0, 0, 1, 1] + [1] * 6)
    ece = expected_calibration_error(y, probs, n_bins=10)
    assert ece == pytest.approx(0.4 * 0.45 + 0.6 * 0.35)
    # all-overconfident: confidence 0.9, accuracy 0.5 -> ECE = MCE = 0.4
    probs2 = np.array([[0.9, 0.1]] * 10)
    y2 = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(y2, probs2) == pytest.approx(0.4)
    out = plot_reliability_diagram(y, probs, tmp_path / "rel.png", n_bins=10)
    assert out["ece"] == pytest.approx(0.39) and out["mce"] == pytest.approx(0.45)
    _assert_png(tmp_path / "rel.png")
    # a single bin is just |accuracy - mean confidence|
    assert expected_calibration_error(y, probs, n_bins=1) == pytest.approx(abs(0.8 - (0.4 * 0.95 + 0.6 * 0.65)))
