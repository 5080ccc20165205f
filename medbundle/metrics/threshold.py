"""The operating threshold of a binary decision, chosen on validation data and applied unchanged to test data.

Rules (the evaluate key ``threshold_rule``):

- ``"youden"``: the threshold maximising Youden's J = sensitivity + specificity - 1;
- ``"sensitivity:0.95"``: the highest threshold whose sensitivity is at least 0.95 (the most specific such one);
- ``"specificity:0.90"``: the lowest threshold whose specificity is at least 0.90 (the most sensitive such one);
- ``"fixed:0.5"``: the given value.

A sample is called positive when its score is ``>= threshold``. A chosen threshold lies halfway between the
validation score it admits and the next lower distinct score, so validation data are classified exactly as at
that score while unseen scores are not biased towards either side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["THRESHOLD_RULES", "parse_threshold_rule", "choose_threshold"]

THRESHOLD_RULES = ("youden", "sensitivity:<target>", "specificity:<target>", "fixed:<value>")


def parse_threshold_rule(rule: str) -> tuple[str, float | None]:
    """Split a rule into its kind and target: ``"sensitivity:0.95"`` -> ``("sensitivity", 0.95)``.

    Args:
        rule: one of :data:`THRESHOLD_RULES`.

    Raises:
        ValueError: a rule that is none of those, or a target outside ``[0, 1]``.
    """
    text = str(rule).strip().lower()
    kind, _, value = text.partition(":")
    fix = "use 'youden', 'sensitivity:<0-1>', 'specificity:<0-1>' or 'fixed:<0-1>' (evaluate key threshold_rule)"
    if kind == "youden" and not value:
        return "youden", None
    if kind in ("sensitivity", "specificity", "fixed") and value:
        try:
            target = float(value)
        except ValueError:
            target = float("nan")
        if 0.0 <= target <= 1.0:
            return kind, target
    raise ValueError(f"threshold rule {rule!r} is not understood: {fix}.")


def choose_threshold(positive: Any, score: Any, rule: str = "youden") -> dict:
    """Choose a decision threshold on ``score`` for the boolean target ``positive`` by ``rule``.

    Args:
        positive: boolean (or 0/1) truth per sample, shape ``(N,)``: the validation labels of the positive class.
        score: the positive class's (calibrated) probability per sample, shape ``(N,)``.
        rule: see the module docstring.

    Returns:
        ``{"value", "rule", "sensitivity", "specificity", "youden_j", "n"}``: the threshold and the validation
        sensitivity / specificity it gives.

    Raises:
        ValueError: an unknown rule, or (for every rule but ``fixed``) a target with only one class present.
    """
    from sklearn.metrics import roc_curve

    kind, target = parse_threshold_rule(rule)
    pos = np.asarray(positive).reshape(-1).astype(bool)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if pos.shape != s.shape:
        raise ValueError(f"{pos.size} targets for {s.size} scores.")
    if kind == "fixed":
        value = float(target)
    else:
        if pos.all() or not pos.any():
            raise ValueError(f"threshold rule {rule!r} needs both classes in the validation data; it has only one.")
        fpr, tpr, thr = roc_curve(pos.astype(np.int64), s, drop_intermediate=False)
        if kind == "youden":
            i = int(np.argmax(tpr - fpr))
        elif kind == "sensitivity":
            i = int(np.flatnonzero(tpr >= target - 1e-12)[0])
        else:
            i = int(np.flatnonzero(1.0 - fpr >= target - 1e-12)[-1])
        if not np.isfinite(thr[i]):  # sklearn's first threshold (nothing called positive)
            value = float(np.nextafter(s.max(), np.inf))
        elif i + 1 < len(thr):
            value = float((thr[i] + thr[i + 1]) / 2.0)
        else:
            value = float(np.nextafter(thr[i], -np.inf))
    called = s >= value
    sens = float(np.mean(called[pos])) if pos.any() else None
    spec = float(np.mean(~called[~pos])) if (~pos).any() else None
    return {"value": value, "rule": str(rule).strip().lower(), "sensitivity": sens, "specificity": spec,
            "youden_j": None if sens is None or spec is None else sens + spec - 1.0, "n": int(pos.size)}
