"""Split conformal prediction sets (least ambiguous set-valued classifier, LAC; Sadinle et al., 2019).

On ``n`` validation images the score of each is ``1 - p(true class)``; ``qhat`` is their quantile at level
``ceil((n + 1)(1 - alpha)) / n``, the ``ceil((n + 1)(1 - alpha))``-th smallest score (the finite-sample correction: with exchangeable data a new image's set
``{k : 1 - p_k <= qhat}`` holds its true class with probability at least ``1 - alpha``). When that level exceeds 1
(too few validation images for ``alpha``) ``qhat`` is 1 and every set holds every class. A set that is not a single
class (empty, or ambiguous) flags the image for referral.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from medbundle.metrics.intervals import proportion_with_ci
from medbundle.metrics.utils import _as_arrays

__all__ = ["LAC_SCORE", "conformal_quantile", "prediction_sets", "conformal_summary"]

logger = logging.getLogger("medbundle.metrics")

LAC_SCORE = "lac: 1 - calibrated probability of the true class"


def conformal_quantile(y_true: Any, probs: Any, alpha: float = 0.1) -> dict:
    """Fit the split-conformal threshold ``qhat`` on calibration (validation) data.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        alpha: the miscoverage rate: sets aim at ``1 - alpha`` coverage.

    Returns:
        ``{"alpha", "qhat", "level", "n", "score"}``.
    """
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"conformal alpha must be in (0, 1), got {alpha} (evaluate key conformal_alpha).")
    y, p = _as_arrays(y_true, probs)
    n = len(y)
    scores = 1.0 - p[np.arange(n), y]
    k = math.ceil((n + 1) * (1.0 - a) - 1e-9)  # the k-th smallest score is the quantile at level k / n
    level = k / n
    if k > n:
        logger.warning("conformal: %d calibration images are too few for alpha=%s (need >= %d): every set holds "
                       "every class", n, a, math.ceil(1.0 / a) - 1)
        qhat = 1.0
    else:
        qhat = float(np.partition(scores, k - 1)[k - 1])
    return {"alpha": a, "qhat": qhat, "level": min(level, 1.0), "n": int(n), "score": LAC_SCORE}


def prediction_sets(probs: Any, qhat: float) -> np.ndarray:
    """Boolean prediction sets ``{k : 1 - p_k <= qhat}``, shape ``(N, C)``.

    Args:
        probs: class probabilities, shape ``(N, C)`` (calibrated as for the fit).
        qhat: the conformal threshold from :func:`conformal_quantile`.
    """
    _, p = _as_arrays(None, probs)
    return (1.0 - p) <= float(qhat) + 1e-12


def conformal_summary(y_true: Any, sets: Any, level: float = 0.95) -> dict:
    """Empirical coverage (Wilson interval), mean set size and referral rate of prediction sets on labelled data.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        sets: boolean prediction sets, shape ``(N, C)``.
        level: confidence level of the coverage interval.

    Returns:
        ``{"coverage": {"value", "lo", "hi", ...}, "mean_set_size", "set_size_counts": {size: count},
        "refer_rate", "n_refer", "empty_rate", "accuracy_singletons", "n"}``.
    """
    s = np.asarray(sets, dtype=bool)
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    if s.ndim != 2 or s.shape[0] != y.size:
        raise ValueError(f"sets must have shape ({y.size}, C), got {s.shape}.")
    n = y.size
    covered = s[np.arange(n), y]
    size = s.sum(axis=1)
    single = size == 1
    return {
        "coverage": proportion_with_ci(int(covered.sum()), n, level),
        "mean_set_size": float(size.mean()) if n else None,
        "set_size_counts": {str(k): int(np.sum(size == k)) for k in range(s.shape[1] + 1)},
        "refer_rate": float(np.mean(~single)) if n else None,
        "n_refer": int(np.sum(~single)),
        "empty_rate": float(np.mean(size == 0)) if n else None,
        "accuracy_singletons": float(covered[single].mean()) if single.any() else None,
        "n": int(n),
    }
