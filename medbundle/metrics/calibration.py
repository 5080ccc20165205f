"""Calibration of the top-label confidence: equal-width confidence bins and the expected calibration error."""

from __future__ import annotations

from typing import Any

import numpy as np

from medbundle.metrics.utils import _as_arrays

__all__ = ["expected_calibration_error"]


def _calibration_bins(y_true: Any, probs: Any, n_bins: int = 10) -> dict:
    """Top-label calibration statistics in ``n_bins`` equal-width confidence bins ``(lo, hi]``."""
    y, p = _as_arrays(y_true, probs)
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    n_bins = int(n_bins)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin i holds confidences in (edges[i], edges[i+1]]; confidence 0 goes to the first bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(idx, weights=correct, minlength=n_bins)
    nonempty = count > 0
    mean_conf = np.full(n_bins, np.nan)
    mean_acc = np.full(n_bins, np.nan)
    mean_conf[nonempty] = sum_conf[nonempty] / count[nonempty]
    mean_acc[nonempty] = sum_acc[nonempty] / count[nonempty]
    gap = np.abs(mean_acc - mean_conf)
    ece = float(np.sum(count[nonempty] / len(conf) * gap[nonempty]))
    mce = float(np.max(gap[nonempty]))
    return {
        "edges": edges,
        "count": count,
        "confidence": mean_conf,
        "accuracy": mean_acc,
        "ece": ece,
        "mce": mce,
        "conf_all": conf,
    }


def expected_calibration_error(y_true: Any, probs: Any, n_bins: int = 10) -> float:
    """Expected calibration error (ECE) of the top-label confidence.

    Confidences ``max(probs, axis=1)`` are put into ``n_bins`` equal-width bins ``(lo, hi]`` on
    ``[0, 1]`` (a confidence of exactly 0 goes to the first bin);
    ``ECE = sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|`` over non-empty bins
    (Guo et al., 2017).

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        n_bins: number of equal-width confidence bins.

    Returns:
        the ECE as a float in ``[0, 1]``.
    """
    return _calibration_bins(y_true, probs, n_bins)["ece"]
