"""Temperature scaling (Guo et al., 2017) of class probabilities, and calibration figures before and after it.

The model's probabilities ``p`` are rescaled as ``softmax(log p / T)``: ``T > 1`` softens over-confident
probabilities, ``T < 1`` sharpens them, and the argmax (so accuracy) never changes. ``T`` is fitted on validation
data by minimising the negative log-likelihood over ``log T`` (``scipy.optimize.minimize_scalar``). Working on
``log p`` rather than logits lets the same code calibrate averaged (test-time augmented) probabilities and a
stored model's outputs alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medbundle.metrics.calibration import _calibration_bins
from medbundle.metrics.utils import _as_arrays

__all__ = ["fit_temperature", "apply_temperature", "calibration_summary"]

_EPS = 1e-12


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, _EPS, 1.0))


def apply_temperature(probs: Any, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row.

    Args:
        probs: class probabilities, shape ``(N, C)``.
        temperature: ``T > 0``.

    Returns:
        the rescaled probabilities, shape ``(N, C)``, float64.
    """
    from scipy.special import softmax

    _, p = _as_arrays(None, probs)
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature}.")
    return softmax(_log_probs(p) / t, axis=1)


def fit_temperature(y_true: Any, probs: Any, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the negative log-likelihood of ``y_true`` under ``softmax(log p / T)``.

    Args:
        y_true: integer class indices, shape ``(N,)`` (validation labels).
        probs: class probabilities, shape ``(N, C)`` (validation outputs).
        bounds: the search interval of ``T``.

    Returns:
        ``T`` (a bounded search on ``log T``; a value at a bound means the data ask for more).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    y, p = _as_arrays(y_true, probs)
    logp = _log_probs(p)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logp / np.exp(log_t), axis=1)[rows, y].mean())

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-6})
    return float(np.exp(res.x))


def calibration_summary(y_true: Any, probs: Any, n_bins: int = 10) -> dict:
    """ECE, MCE, Brier score and NLL of class probabilities.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        n_bins: equal-width confidence bins of ECE / MCE (see :func:`~medbundle.metrics.expected_calibration_error`).

    Returns:
        ``{"ece", "mce", "brier", "nll", "n_bins"}``: Brier is scikit-learn's ``brier_score_loss`` (two classes:
        mean squared error of the class-1 probability; more: the sum over classes, range ``[0, 2]``), NLL its
        ``log_loss`` (natural log).
    """
    from sklearn.metrics import brier_score_loss, log_loss

    y, p = _as_arrays(y_true, probs)
    labels = list(range(p.shape[1]))
    stats = _calibration_bins(y, p, n_bins)
    q = np.clip(p, _EPS, 1.0)
    q = q / q.sum(axis=1, keepdims=True)
    return {
        "ece": float(stats["ece"]),
        "mce": float(stats["mce"]),
        "brier": float(brier_score_loss(y, p / p.sum(axis=1, keepdims=True), labels=labels)),
        "nll": float(log_loss(y, q, labels=labels)),
        "n_bins": int(n_bins),
    }
