"""Confidence intervals: Wilson for proportions, DeLong for ROC AUC (binary, and the mean of one-vs-rest AUCs).

Every function returns a JSON-ready dict ``{"value", "lo", "hi", ...}`` that names its method, so a report can
say how each interval was obtained. ``lo`` / ``hi`` are ``None`` where the interval is undefined (no samples, a
class absent).

DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988) is computed with the midrank algorithm of Sun & Xu (2014):
the placement value of a positive is the fraction of negatives it outranks (ties count one half), that of a
negative the fraction of positives that outrank it; ``Var(AUC) = S10 / m + S01 / n`` with ``S10``, ``S01`` their
sample variances over the ``m`` positives and ``n`` negatives. The interval is the normal one, clipped to
``[0, 1]`` (as pROC's ``ci.auc(method="delong")``). Under complete separation (AUC 0 or 1) the variance is 0 and
the interval collapses to a point: the result says so in ``degenerate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "WILSON",
    "DELONG",
    "DELONG_MACRO",
    "wilson_interval",
    "proportion_with_ci",
    "delong_auc",
    "delong_macro_auc",
]

WILSON = "Wilson score interval"
DELONG = "DeLong (1988) variance, midrank algorithm of Sun & Xu (2014), normal interval clipped to [0, 1]"
DELONG_MACRO = ("DeLong placement values of each one-vs-rest AUC, variance of their mean stratified by true class, "
                "normal interval clipped to [0, 1]")


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}.")
    return float(norm.ppf(0.5 + float(level) / 2.0))


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion ``k / n`` (``scipy.stats.binomtest(k, n).proportion_ci``).

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials; ``0`` gives ``(None, None)``.
        level: confidence level.

    Returns:
        ``(lo, hi)``.
    """
    from scipy.stats import binomtest

    k, n = int(k), int(n)
    if n == 0:
        return None, None
    if not 0 <= k <= n:
        raise ValueError(f"successes must be in [0, {n}], got {k}.")
    ci = binomtest(k, n).proportion_ci(confidence_level=float(level), method="wilson")
    return float(ci.low), float(ci.high)


def proportion_with_ci(k: int, n: int, level: float = 0.95) -> dict:
    """The proportion ``k / n`` with its Wilson interval.

    Args:
        k: successes.
        n: trials.
        level: confidence level.

    Returns:
        ``{"value", "lo", "hi", "k", "n", "method"}``; ``value`` is ``None`` when ``n == 0``.
    """
    lo, hi = wilson_interval(k, n, level)
    return {"value": (int(k) / int(n)) if int(n) > 0 else None, "lo": lo, "hi": hi, "k": int(k), "n": int(n),
            "method": "wilson"}


def _placements(pos: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and the DeLong placement values of the positives (V10) and negatives (V01), from midranks."""
    from scipy.stats import rankdata

    x, y = score[pos], score[~pos]
    m, n = len(x), len(y)
    tz = rankdata(np.concatenate([x, y]))
    tx, ty = rankdata(x), rankdata(y)
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    return float(auc), v10, v01


def _binary_inputs(positive: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(positive).reshape(-1).astype(bool)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if pos.shape != s.shape:
        raise ValueError(f"{pos.size} targets for {s.size} scores.")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values.")
    return pos, s


def _interval(value: float, var: float, level: float, method: str, **extra: Any) -> dict:
    se = float(np.sqrt(max(var, 0.0)))
    z = _z(level)
    lo, hi = max(0.0, value - z * se), min(1.0, value + z * se)
    return {"value": value, "lo": lo, "hi": hi, "se": se, "method": method, "degenerate": bool(se == 0.0), **extra}


def delong_auc(positive: Any, score: Any, level: float = 0.95) -> dict:
    """ROC AUC of ``score`` for the boolean target ``positive`` with DeLong's confidence interval.

    Args:
        positive: boolean (or 0/1) target per sample, shape ``(N,)``.
        score: the score of the positive class per sample (higher = more positive), shape ``(N,)``.
        level: confidence level.

    Returns:
        ``{"value", "lo", "hi", "se", "method", "degenerate", "n_positive", "n_negative"}``; every figure ``None``
        when one class is absent; ``lo`` / ``hi`` / ``se`` ``None`` with fewer than 2 positives or negatives.
    """
    pos, s = _binary_inputs(positive, score)
    m, n = int(pos.sum()), int((~pos).sum())
    counts = {"n_positive": m, "n_negative": n}
    if m == 0 or n == 0:
        return {"value": None, "lo": None, "hi": None, "se": None, "method": "delong", "degenerate": False, **counts}
    auc, v10, v01 = _placements(pos, s)
    if m < 2 or n < 2:
        return {"value": auc, "lo": None, "hi": None, "se": None, "method": "delong", "degenerate": False, **counts}
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    return _interval(auc, float(var), level, "delong", **counts)


def delong_macro_auc(y_true: Any, probs: Any, classes: Sequence[int] | None = None, level: float = 0.95) -> dict:
    """Mean of one-vs-rest ROC AUCs with a DeLong-type confidence interval.

    Each class's AUC is a mean of placement values; to first order ``AUC_k - E[AUC_k] = sum_s psi_k(s)`` with
    ``psi_k(s) = (V10_k(s) - AUC_k) / m_k`` for a positive of class ``k`` and ``(V01_k(s) - AUC_k) / n_k`` for a
    negative. The mean over classes has ``psi(s) = mean_k psi_k(s)``; its variance is estimated within strata of the
    true class, ``sum_c n_c / (n_c - 1) * sum_{s in c} (psi(s) - mean_c psi)^2``. For a single class of a binary
    problem this is exactly DeLong's variance.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities (or scores), shape ``(N, C)``.
        classes: the classes averaged (default: every class present in ``y_true`` that also has negatives).
        level: confidence level.

    Returns:
        ``{"value", "lo", "hi", "se", "method", "degenerate", "classes"}``; ``None`` figures when no class qualifies.
    """
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.size:
        raise ValueError(f"probs must have shape ({y.size}, C), got {p.shape}.")
    if classes is None:
        classes = [k for k in range(p.shape[1]) if 0 < int((y == k).sum()) < y.size]
    classes = [int(k) for k in classes if 0 < int((y == int(k)).sum()) < y.size]
    if not classes:
        return {"value": None, "lo": None, "hi": None, "se": None, "method": "delong_macro", "degenerate": False,
                "classes": []}
    psi = np.zeros(y.size)
    aucs = []
    for k in classes:
        pos = y == k
        auc, v10, v01 = _placements(pos, p[:, k])
        aucs.append(auc)
        psi[pos] += (v10 - auc) / pos.sum()
        psi[~pos] += (v01 - auc) / (~pos).sum()
    psi /= len(classes)
    var = 0.0
    for c in np.unique(y):
        part = psi[y == c]
        if part.size > 1:
            var += part.size / (part.size - 1) * float(np.sum((part - part.mean()) ** 2))
    return _interval(float(np.mean(aucs)), var, level, "delong_macro", classes=classes)
