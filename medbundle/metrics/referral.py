"""Predictive entropy per image, and accuracy on the images kept when the most uncertain ones are referred.

A referral curve sorts the images by an uncertainty (most uncertain first), refers the first ``r`` of them to a
clinician and scores the model on the rest: ``accuracy_kept(r)``. A useful uncertainty makes the curve rise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medbundle.metrics.utils import _as_arrays

__all__ = ["predictive_entropy", "referral_curve", "REFERRAL_RATES"]

REFERRAL_RATES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def predictive_entropy(probs: Any) -> np.ndarray:
    """Entropy (nats) of each row of class probabilities: ``-sum_k p_k log p_k`` (``scipy.stats.entropy``).

    For ``N`` passes (test-time augmentation, MC dropout) pass the mean of the passes' probabilities: the
    predictive entropy, 0 for a certain prediction and ``log C`` for a uniform one.

    Args:
        probs: class probabilities, shape ``(N, C)``.

    Returns:
        shape ``(N,)``.
    """
    from scipy.stats import entropy

    _, p = _as_arrays(None, probs)
    return entropy(p, axis=1)


def referral_curve(correct: Any, uncertainty: Any, rates: Sequence[float] | None = None) -> dict:
    """Accuracy on the kept images when the most uncertain fraction ``rate`` is referred.

    Args:
        correct: boolean per image, whether the model's decision is right, shape ``(N,)``.
        uncertainty: higher = more uncertain (entropy, set size, ...), shape ``(N,)``; ties keep input order.
        rates: referral rates to report (default :data:`REFERRAL_RATES`); ``floor(rate * N)`` images are referred.

    Returns:
        ``{"referral_rate": [...], "accuracy_kept": [...], "n_kept": [...]}`` at ``rates``, and the full curve
        (every count of referred images) under ``"curve": {"referral_rate", "accuracy_kept"}``.
    """
    ok = np.asarray(correct).reshape(-1).astype(bool)
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    if ok.shape != u.shape:
        raise ValueError(f"{ok.size} decisions for {u.size} uncertainties.")
    n = ok.size
    if n == 0:
        raise ValueError("referral_curve: no images.")
    order = np.argsort(-u, kind="stable")
    kept_correct = np.cumsum(ok[order][::-1])[::-1]  # correct among images order[r:], r = 0..n-1
    n_kept_all = n - np.arange(n)
    acc_all = kept_correct / n_kept_all
    rates = REFERRAL_RATES if rates is None else tuple(float(r) for r in rates)
    refer = [min(int(np.floor(r * n + 1e-9)), n - 1) for r in rates]
    return {
        "referral_rate": [float(r) for r in rates],
        "accuracy_kept": [float(acc_all[k]) for k in refer],
        "n_kept": [int(n - k) for k in refer],
        "curve": {"referral_rate": (np.arange(n) / n).tolist(), "accuracy_kept": acc_all.tolist()},
    }
