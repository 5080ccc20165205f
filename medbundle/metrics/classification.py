"""Classification metrics from labels and class probabilities (accuracy, F1, kappa, AUC, per-class rates).

Everything here works on plain numpy arrays (``y_true`` integer labels of shape ``(N,)`` and
``probs`` class probabilities of shape ``(N, C)``), so it can be called from an Ignite handler,
a bundle workflow or a notebook alike.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from medbundle.metrics.calibration import expected_calibration_error
from medbundle.metrics.utils import _as_arrays
from medbundle.utils import jsonable

__all__ = ["classification_metrics"]


def _safe_div(a: float, b: float) -> float | None:
    return float(a) / float(b) if b > 0 else None


def _binary_auc(pos: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of ``score`` for the boolean target ``pos``; ``None`` when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if pos.all() or not pos.any():
        return None
    return float(roc_auc_score(pos.astype(np.int64), score))


def classification_metrics(y_true: Any, probs: Any, class_names: Sequence[str]) -> dict:
    """Compute a JSON-ready set of classification metrics from labels and class probabilities.

    The prediction is ``argmax(probs, axis=1)``. All sklearn calls use ``labels=range(C)``, so
    classes absent from ``y_true`` (small or filtered test sets) never crash the computation:
    their AUC, sensitivity and NPV are ``None`` (JSON ``null``). The headline averages ``macro_f1``,
    ``balanced_accuracy`` and ``auc_macro_ovr`` are over the classes present in ``y_true`` (a class with no
    test image has no measurable F1); ``macro_avg`` and ``weighted_avg`` stay sklearn's
    ``classification_report`` over all ``C`` classes, an absent class counting with zero recall and F1.

    Per-class one-vs-rest quantities follow the clinical definitions on the confusion matrix:
    ``sensitivity = TP/(TP+FN)``, ``specificity = TN/(TN+FP)``, ``ppv = TP/(TP+FP)``,
    ``npv = TN/(TN+FN)``; they are ``None`` when the denominator is zero. ``precision``,
    ``recall`` and ``f1`` are sklearn's values with ``zero_division=0`` (so ``precision`` is ``0``
    where ``ppv`` is ``None`` for a class that is never predicted).

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``, rows summing to 1.
        class_names: ``C`` unique class names, in column order of ``probs``.

    Returns:
        dict with keys ``n``, ``n_classes``, ``class_names``, ``accuracy``, ``balanced_accuracy``
        (mean recall over the classes present in ``y_true``, as sklearn), ``macro_f1`` (mean F1 over the
        classes present in ``y_true``),
        ``weighted_f1``, ``cohen_kappa``, ``auc_macro_ovr`` (mean one-vs-rest AUC over the classes
        present in ``y_true``, equal to sklearn's ``roc_auc_score(multi_class="ovr",
        average="macro")`` when all classes are present; for 2 classes the binary AUC of class 1),
        ``ece`` (see :func:`expected_calibration_error`), ``per_class`` (``{name: {precision,
        recall, f1, support, sensitivity, specificity, ppv, npv, auc}}``), ``macro_avg`` and
        ``weighted_avg`` (``{precision, recall, f1, support}`` as sklearn's
        ``classification_report(output_dict=True)``) and ``confusion_matrix`` (nested list, rows =
        true class, columns = predicted class). Undefined values are ``None``.

    Raises:
        ValueError: on mismatched shapes, non-finite probabilities or labels outside ``[0, C)``.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    n, c = p.shape
    labels = list(range(c))
    pred = p.argmax(axis=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true", kappa 0/0, ...
        cm = confusion_matrix(y, pred, labels=labels)
        prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
        averages = {}
        for avg in ("macro", "weighted"):
            ap, ar, af, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
            averages[avg] = {"precision": ap, "recall": ar, "f1": af, "support": int(n)}
        present = sorted(set(int(v) for v in y))
        macro_f1_present = precision_recall_fscore_support(y, pred, labels=present, average="macro",
                                                           zero_division=0)[2]
        kappa = cohen_kappa_score(y, pred, labels=labels)
        bal_acc = balanced_accuracy_score(y, pred)

    per_class: dict[str, dict] = {}
    aucs: list[float] = []
    for k, name in enumerate(names):
        tp = cm[k, k]
        fn = cm[k, :].sum() - tp
        fp = cm[:, k].sum() - tp
        tn = n - tp - fn - fp
        auc = _binary_auc(y == k, p[:, k])
        if auc is not None:
            aucs.append(auc)
        per_class[name] = {
            "precision": prec[k],
            "recall": rec[k],
            "f1": f1[k],
            "support": int(sup[k]),
            "sensitivity": _safe_div(tp, tp + fn),
            "specificity": _safe_div(tn, tn + fp),
            "ppv": _safe_div(tp, tp + fp),
            "npv": _safe_div(tn, tn + fn),
            "auc": auc,
        }

    if c == 2:
        auc_macro = per_class[names[1]]["auc"]
    else:
        auc_macro = float(np.mean(aucs)) if aucs else None

    out = {
        "n": int(n),
        "n_classes": int(c),
        "class_names": names,
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": bal_acc,
        "macro_f1": macro_f1_present,
        "weighted_f1": averages["weighted"]["f1"],
        "cohen_kappa": kappa,
        "auc_macro_ovr": auc_macro,
        "ece": expected_calibration_error(y, p),
        "per_class": per_class,
        "macro_avg": averages["macro"],
        "weighted_avg": averages["weighted"],
        "confusion_matrix": cm,
    }
    return jsonable(out)
