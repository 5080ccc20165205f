"""Clinical statistics of a decision with 95 % confidence intervals: sensitivity, specificity, PPV, NPV, F1, accuracy, AUC.

- :func:`decision_statistics`: one positive class and a yes/no decision per sample (a threshold on the positive
  class's probability, or an argmax); PPV / NPV also at a prevalence the user gives (Bayes' rule).
- :func:`clinical_statistics`: a whole classifier: accuracy and macro AUC with intervals, every class one-vs-rest
  with argmax decisions, and the thresholded binary decision of a positive class when one is given.

Methods (named in every result): Wilson score intervals for the proportions (sensitivity, specificity, PPV, NPV,
accuracy); F1 through the Jaccard index ``J = TP / (TP + FP + FN)``, a binomial proportion given
``TP + FP + FN``, with its Wilson interval mapped through the increasing ``F1 = 2J / (1 + J)``; DeLong for AUC;
PPV / NPV at a given prevalence with the adjusted logit interval of Mercaldo, Lau & Zhou (2007).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medbundle.metrics.intervals import (
    DELONG,
    DELONG_MACRO,
    WILSON,
    _z,
    delong_auc,
    delong_macro_auc,
    proportion_with_ci,
    wilson_interval,
)
from medbundle.metrics.utils import _as_arrays
from medbundle.utils import jsonable

__all__ = ["CI_METHODS", "f1_with_ci", "predictive_values_at_prevalence", "decision_statistics",
           "clinical_statistics"]

CI_METHODS = {
    "proportions": WILSON + " (sensitivity, specificity, PPV, NPV, accuracy, coverage)",
    "f1": "Wilson interval of the Jaccard index TP/(TP+FP+FN), mapped through F1 = 2J/(1+J)",
    "auc": DELONG,
    "auc_macro_ovr": DELONG_MACRO,
    "ppv_npv_at_prevalence": "adjusted logit interval of Mercaldo, Lau & Zhou (2007), Bayes' rule",
}


def f1_with_ci(tp: int, fp: int, fn: int, level: float = 0.95) -> dict:
    """F1 score ``2TP / (2TP + FP + FN)`` with the Wilson interval of the Jaccard index mapped to F1.

    Args:
        tp: true positives.
        fp: false positives.
        fn: false negatives.
        level: confidence level.

    Returns:
        ``{"value", "lo", "hi", "method"}``; ``None`` figures when ``TP + FP + FN == 0``.
    """
    m = int(tp) + int(fp) + int(fn)
    if m == 0:
        return {"value": None, "lo": None, "hi": None, "method": "wilson_jaccard"}
    lo, hi = wilson_interval(tp, m, level)
    return {"value": 2.0 * tp / (2.0 * tp + fp + fn), "lo": 2 * lo / (1 + lo), "hi": 2 * hi / (1 + hi),
            "method": "wilson_jaccard"}


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def predictive_values_at_prevalence(tp: int, fn: int, tn: int, fp: int, prevalence: float,
                                    level: float = 0.95) -> dict:
    """PPV and NPV at ``prevalence`` by Bayes' rule, with Mercaldo's adjusted logit intervals.

    ``PPV = p Se / (p Se + (1 - p)(1 - Sp))``, ``NPV = (1 - p) Sp / ((1 - p) Sp + p (1 - Se))``. The interval is
    normal on the logit scale with the delta-method variance, using sensitivity and specificity adjusted by
    ``z^2 / 2`` successes in ``z^2`` more trials (so zero cells give finite intervals).

    Args:
        tp: true positives.
        fn: false negatives.
        tn: true negatives.
        fp: false positives.
        prevalence: the prevalence of the positive class, in ``(0, 1)``.
        level: confidence level.

    Returns:
        ``{"prevalence", "ppv": {"value", "lo", "hi"}, "npv": {...}, "method"}``; ``None`` figures when there are
        no positives or no negatives.
    """
    p = float(prevalence)
    if not 0.0 < p < 1.0:
        raise ValueError(f"prevalence must be in (0, 1), got {prevalence} (evaluate key prevalence).")
    n1, n0 = int(tp) + int(fn), int(tn) + int(fp)
    none = {"value": None, "lo": None, "hi": None}
    out = {"prevalence": p, "ppv": dict(none), "npv": dict(none), "method": "mercaldo_logit"}
    if n1 == 0 or n0 == 0:
        return out
    se, sp = tp / n1, tn / n0
    ppv_den = p * se + (1 - p) * (1 - sp)
    npv_den = (1 - p) * sp + p * (1 - se)
    z = _z(level)
    a_se, a_sp = (tp + z * z / 2) / (n1 + z * z), (tn + z * z / 2) / (n0 + z * z)
    a_n1, a_n0 = n1 + z * z, n0 + z * z
    lp = math.log(p * a_se / ((1 - p) * (1 - a_sp)))
    vp = (1 - a_se) / (a_se * a_n1) + a_sp / ((1 - a_sp) * a_n0)
    ln = math.log((1 - p) * a_sp / (p * (1 - a_se)))
    vn = a_se / ((1 - a_se) * a_n1) + (1 - a_sp) / (a_sp * a_n0)
    out["ppv"] = {"value": p * se / ppv_den if ppv_den > 0 else None,
                  "lo": _expit(lp - z * math.sqrt(vp)), "hi": _expit(lp + z * math.sqrt(vp))}
    out["npv"] = {"value": (1 - p) * sp / npv_den if npv_den > 0 else None,
                  "lo": _expit(ln - z * math.sqrt(vn)), "hi": _expit(ln + z * math.sqrt(vn))}
    return out


def decision_statistics(positive: Any, decision: Any, score: Any = None, prevalence: float | None = None,
                        level: float = 0.95) -> dict:
    """Sensitivity, specificity, PPV, NPV, F1, accuracy (and AUC of ``score``) of a yes/no decision, with intervals.

    Args:
        positive: boolean truth per sample (the positive class), shape ``(N,)``.
        decision: boolean decision per sample (called positive), shape ``(N,)``.
        score: optional score of the positive class per sample for the AUC (DeLong interval).
        prevalence: optional prevalence for PPV / NPV by Bayes' rule (see :func:`predictive_values_at_prevalence`).
        level: confidence level.

    Returns:
        ``{"n", "counts": {"tp", "fp", "fn", "tn"}, "sensitivity", "specificity", "ppv", "npv", "accuracy", "f1",
        "auc", "at_prevalence"}``: every figure a ``{"value", "lo", "hi", ...}`` dict (``auc`` / ``at_prevalence``
        ``None`` when not asked for).
    """
    pos = np.asarray(positive).reshape(-1).astype(bool)
    dec = np.asarray(decision).reshape(-1).astype(bool)
    if pos.shape != dec.shape:
        raise ValueError(f"{pos.size} targets for {dec.size} decisions.")
    tp, fn = int(np.sum(pos & dec)), int(np.sum(pos & ~dec))
    fp, tn = int(np.sum(~pos & dec)), int(np.sum(~pos & ~dec))
    out = {
        "n": int(pos.size),
        "counts": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "sensitivity": proportion_with_ci(tp, tp + fn, level),
        "specificity": proportion_with_ci(tn, tn + fp, level),
        "ppv": proportion_with_ci(tp, tp + fp, level),
        "npv": proportion_with_ci(tn, tn + fn, level),
        "accuracy": proportion_with_ci(tp + tn, pos.size, level),
        "f1": f1_with_ci(tp, fp, fn, level),
        "auc": None if score is None else delong_auc(pos, score, level),
        "at_prevalence": None,
    }
    if prevalence is not None:
        out["at_prevalence"] = predictive_values_at_prevalence(tp, fn, tn, fp, prevalence, level)
    return out


def clinical_statistics(y_true: Any, probs: Any, class_names: Sequence[str], positive_class: int | None = None,
                        threshold: float | None = None, prevalence: float | None = None,
                        threshold_probs: Any = None, level: float = 0.95) -> dict:
    """Accuracy, macro AUC and every class one-vs-rest with confidence intervals; a thresholded binary decision.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` class names.
        positive_class: index of the class of the binary decision (``None``: no binary section).
        threshold: the decision threshold on that class's probability (called positive when ``p >= threshold``;
            ``None``: argmax decisions).
        prevalence: prevalence for the binary section's PPV / NPV (``None``: the prevalence in ``y_true``).
        threshold_probs: the probabilities the threshold applies to, shape ``(N, C)`` (default ``probs``; e.g.
            temperature-scaled ones while ``probs`` are the model's: the AUCs stay those of ``probs``).
        level: confidence level.

    Returns:
        JSON-ready ``{"ci_level", "ci_methods", "accuracy", "auc_macro_ovr", "per_class": {name: decision
        statistics of argmax}, "binary": {...} or None}``. For two classes ``auc_macro_ovr`` is the DeLong AUC of
        class 1 (as :func:`~medbundle.metrics.classification_metrics` reports it).
    """
    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    n, c = p.shape
    pred = p.argmax(axis=1)
    per_class = {name: decision_statistics(y == k, pred == k, p[:, k], level=level) for k, name in enumerate(names)}
    macro = delong_auc(y == 1, p[:, 1], level) if c == 2 else delong_macro_auc(y, p, level=level)
    out = {
        "ci_level": float(level),
        "ci_methods": dict(CI_METHODS),
        "accuracy": proportion_with_ci(int(np.sum(pred == y)), n, level),
        "auc_macro_ovr": macro,
        "per_class": per_class,
        "binary": None,
    }
    if positive_class is not None:
        k = int(positive_class)
        pos = y == k
        pt = p if threshold_probs is None else _as_arrays(y, threshold_probs, class_names)[1]
        decision = (pred == k) if threshold is None else (pt[:, k] >= float(threshold))
        test_prev = float(pos.mean())
        prev = test_prev if prevalence is None else float(prevalence)
        if prev <= 0.0 or prev >= 1.0:
            prev = None  # one class only: Bayes' rule undefined
        stats = decision_statistics(pos, decision, p[:, k], prevalence=prev, level=level)
        out["binary"] = {
            "positive_class": names[k],
            "threshold": None if threshold is None else float(threshold),
            "decision": "argmax" if threshold is None else f"p({names[k]}) >= threshold",
            "test_prevalence": test_prev,
            "prevalence_source": "test set" if prevalence is None else "given",
            "n_called_positive": int(np.sum(decision)),
            **stats,
        }
    return jsonable(out)
