"""The clinical part of an evaluation report: intervals, calibration before / after, conformal sets, referral.

:func:`clinical_sections` computes it from a test set's labels and probabilities, a calibration record fitted on the
validation split (:mod:`medbundle.calibration`) and an optional per-image uncertainty; :func:`write_clinical_plots`
draws its figures and :func:`clinical_text` prints it. :func:`medbundle.report.write_classification_report` puts
the three into the evaluation folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medbundle.calibration import apply_calibration, calibration_columns, resolve_positive_class
from medbundle.metrics.clinical import clinical_statistics
from medbundle.metrics.conformal import conformal_summary
from medbundle.metrics.referral import predictive_entropy, referral_curve
from medbundle.metrics.temperature import calibration_summary
from medbundle.plots import plot_precision_recall, plot_referral, plot_reliability_comparison
from medbundle.utils import jsonable

__all__ = ["RELIABILITY_CALIBRATED_PNG", "PRECISION_RECALL_PNG", "REFERRAL_PNG", "clinical_sections",
           "write_clinical_plots", "clinical_text"]

RELIABILITY_CALIBRATED_PNG = "reliability_calibrated.png"
PRECISION_RECALL_PNG = "precision_recall.png"
REFERRAL_PNG = "referral.png"


def _points(clinical: dict, names: list[str]) -> tuple[dict, dict]:
    """ROC ``(fpr, tpr)`` and precision-recall ``(recall, precision)`` operating points per class index.

    The thresholded binary decision when there is one, else every class's argmax decision. A 2-class ROC is drawn
    for class 1: a decision on class 0 is marked there as its mirror image.
    """
    binary = clinical.get("binary")
    if binary and binary["threshold"] is not None:
        sources = {names.index(binary["positive_class"]): binary}
    else:
        sources = {k: clinical["per_class"][n] for k, n in enumerate(names)}
    roc, pr = {}, {}
    for k, st in sources.items():
        sens, spec, ppv = (st[key]["value"] for key in ("sensitivity", "specificity", "ppv"))
        if sens is not None and spec is not None:
            roc[k] = (1.0 - spec, sens)
        if sens is not None and ppv is not None:
            pr[k] = (sens, ppv)
    if len(names) == 2 and 0 in roc:
        fpr, tpr = roc.pop(0)
        roc.setdefault(1, (1.0 - tpr, 1.0 - fpr))
    return roc, pr


def clinical_sections(y: np.ndarray, p: np.ndarray, class_names: Sequence[str], calibration: dict | None = None,
                      entropy: Any = None, uncertainty: dict | None = None, prevalence: float | None = None,
                      positive_class: Any = None) -> dict:
    """Compute the clinical sections of a labelled test set.

    Args:
        y: integer class indices, shape ``(N,)``.
        p: the model's class probabilities, shape ``(N, C)``.
        class_names: ``C`` class names.
        calibration: a record of :mod:`medbundle.calibration` (temperature, threshold, conformal quantile), or None.
        entropy: predictive entropy per image from ``N`` passes (``None``: the entropy of the single-pass, calibrated
            where possible, probabilities).
        uncertainty: ``{"method", "passes"}`` describing ``entropy``.
        prevalence: prevalence of the positive class for PPV / NPV (``None``: the test set's).
        positive_class: the binary decision's class without a calibration record (``None``: the last of 2).

    Returns:
        ``{"metrics": {"clinical", "calibration", "conformal", "uncertainty"}, "columns": {predictions.csv
        columns}, "applied": apply_calibration output or None, "roc_points", "pr_points"}``.
    """
    names = [str(c) for c in class_names]
    applied = apply_calibration(p, calibration) if calibration else None
    thr = (calibration or {}).get("threshold")
    k = names.index(thr["positive_class"]) if thr else resolve_positive_class(positive_class, names)
    clinical = clinical_statistics(y, p, names, positive_class=k, threshold=thr["value"] if thr else None,
                                   prevalence=prevalence, threshold_probs=applied["probs"] if applied else None)
    if clinical["binary"] is not None:
        clinical["binary"]["threshold_rule"] = thr["rule"] if thr else "argmax"
    metrics: dict[str, Any] = {"clinical": clinical, "calibration": None, "conformal": None}
    correct = p.argmax(axis=1) == y
    if applied is not None:
        conf = calibration["conformal"]
        metrics["calibration"] = {
            "temperature": calibration["temperature"], "fitted_on": calibration.get("fitted_on"),
            "model_sha256": calibration.get("model_sha256"),
            "before": calibration_summary(y, p), "after": calibration_summary(y, applied["probs"]),
            "val_before": calibration.get("val_before"), "val_after": calibration.get("val_after"),
        }
        metrics["conformal"] = {"alpha": conf["alpha"], "target_coverage": 1.0 - conf["alpha"], "qhat": conf["qhat"],
                                "score": conf.get("score"), "fitted_on": calibration.get("fitted_on"),
                                **conformal_summary(y, applied["sets"])}
    own = entropy is not None
    ent = np.asarray(entropy, dtype=np.float64).reshape(-1) if own else predictive_entropy(
        applied["probs"] if applied is not None else p)
    unc = {"method": (uncertainty or {}).get("method", "tta") if own else "single pass",
           "passes": (uncertainty or {}).get("passes") if own else 1,
           "entropy": {"mean": float(ent.mean()), "median": float(np.median(ent)), "unit": "nats",
                       "of": "mean probabilities over the passes" if own else
                       ("calibrated probabilities" if applied is not None else "probabilities")}}
    by_entropy = referral_curve(correct, ent)
    unc["referral_by_entropy"] = {key: by_entropy[key] for key in ("referral_rate", "accuracy_kept", "n_kept")}
    if applied is not None:
        key = (applied["set_size"] != 1).astype(np.float64) * (1.0 + ent.max()) + ent
        by_set = referral_curve(correct, key)
        unc["referral_by_set"] = {k2: by_set[k2] for k2 in ("referral_rate", "accuracy_kept", "n_kept")}
        unc["conformal_referral"] = {"referral_rate": metrics["conformal"]["refer_rate"],
                                     "accuracy_kept": metrics["conformal"]["accuracy_singletons"]}
        unc["_curves"] = {"by entropy": by_entropy["curve"], "by conformal set, then entropy": by_set["curve"]}
    metrics["uncertainty"] = unc
    roc, pr = _points(clinical, names)
    columns = calibration_columns(applied, names, ent if own else None)
    return {"metrics": metrics, "columns": columns, "applied": applied, "roc_points": roc, "pr_points": pr}


def write_clinical_plots(out: str | Path, y: np.ndarray, p: np.ndarray, class_names: Sequence[str],
                         sections: dict) -> list[str]:
    """Draw ``precision_recall.png``, ``reliability_calibrated.png`` and ``referral.png`` into ``out``.

    Returns:
        the names of the files written.
    """
    out = Path(out)
    names = [str(c) for c in class_names]
    files = []
    plot_precision_recall(y, p, names, out / PRECISION_RECALL_PNG, operating_points=sections["pr_points"])
    files.append(PRECISION_RECALL_PNG)
    applied, metrics = sections["applied"], sections["metrics"]
    if applied is not None:
        plot_reliability_comparison(y, p, applied["probs"], out / RELIABILITY_CALIBRATED_PNG,
                                    temperature=metrics["calibration"]["temperature"])
        files.append(RELIABILITY_CALIBRATED_PNG)
        unc = metrics["uncertainty"]
        curves = {label: (c["referral_rate"], c["accuracy_kept"]) for label, c in unc["_curves"].items()}
        point = unc["conformal_referral"]
        alpha = metrics["conformal"]["alpha"]
        plot_referral(curves, out / REFERRAL_PNG,
                      points={f"conformal sets, alpha {alpha:g}": (point["referral_rate"], point["accuracy_kept"])})
        files.append(REFERRAL_PNG)
    return files


def _ci(d: dict | None, digits: int = 3) -> str:
    if not d or d.get("value") is None:
        return "n/a"
    if d.get("lo") is None:
        return f"{d['value']:.{digits}f} (no interval)"
    return f"{d['value']:.{digits}f} [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}]"


def clinical_text(metrics: dict) -> str:
    """The clinical sections of ``metrics`` (from :func:`clinical_sections`) as readable text."""
    cl = metrics["clinical"]
    level = int(round(100 * cl["ci_level"]))
    lines = ["", f"{level}% confidence intervals [lo, hi]; methods:"]
    lines += [f"  {key:22s}: {text}" for key, text in cl["ci_methods"].items()]
    lines += ["", f"accuracy           : {_ci(cl['accuracy'])}", f"AUC (macro OvR)    : {_ci(cl['auc_macro_ovr'])}",
              "", "per-class one-vs-rest (argmax decisions):"]
    for name, st in cl["per_class"].items():
        lines.append(f"  {name}:")
        for key in ("sensitivity", "specificity", "ppv", "npv", "f1", "auc"):
            lines.append(f"    {key:12s}: {_ci(st[key])}")
    b = cl.get("binary")
    if b:
        rule = b.get("threshold_rule", "argmax")
        how = "argmax" if b["threshold"] is None else f"threshold {b['threshold']:.4f} ({rule}, chosen on validation)"
        lines += ["", f"binary decision: {b['positive_class']} when {b['decision']}; {how}",
                  "  counts: " + ", ".join(f"{k.upper()} {v}" for k, v in b["counts"].items())]
        for key in ("sensitivity", "specificity", "ppv", "npv", "f1", "accuracy", "auc"):
            lines.append(f"    {key:12s}: {_ci(b[key])}")
        at = b.get("at_prevalence")
        if at:
            lines.append(f"    at prevalence {at['prevalence']:.3f} ({b['prevalence_source']}): PPV {_ci(at['ppv'])}, "
                         f"NPV {_ci(at['npv'])}")
    cal = metrics.get("calibration")
    if cal:
        fit = cal.get("fitted_on") or {}
        lines += ["", f"calibration: temperature T = {cal['temperature']:.4f} fitted on {fit.get('split')} "
                  f"(n={fit.get('n')})", f"  {'':8s} {'ECE':>7} {'MCE':>7} {'Brier':>7} {'NLL':>7}"]
        for key in ("before", "after"):
            s = cal[key]
            lines.append(f"  {key:8s} " + " ".join(f"{s[m]:7.4f}" for m in ("ece", "mce", "brier", "nll")))
    conf = metrics.get("conformal")
    if conf:
        sizes = ", ".join(f"{k}: {v}" for k, v in conf["set_size_counts"].items())
        lines += ["", f"conformal prediction sets (split conformal, {conf['score']}; qhat {conf['qhat']:.4f}):",
                  f"  coverage {_ci(conf['coverage'])} (target {conf['target_coverage']:.2f}), mean set size "
                  f"{conf['mean_set_size']:.3f}, set sizes {{{sizes}}}",
                  f"  refer (set not one class): {conf['n_refer']} of {conf['n']} ({100 * conf['refer_rate']:.1f}%)"
                  + ("" if conf["accuracy_singletons"] is None else
                     f", accuracy on the others {conf['accuracy_singletons']:.4f}")]
    unc = metrics.get("uncertainty")
    if unc:
        ent = unc["entropy"]
        lines += ["", f"uncertainty: {unc['method']} ({unc['passes']} pass(es)), predictive entropy of the "
                  f"{ent['of']}: mean {ent['mean']:.4f} nats",
                  "  referral by entropy: " + ", ".join(
                      f"{100 * r:.0f}% -> {a:.4f}" for r, a in zip(unc["referral_by_entropy"]["referral_rate"],
                                                                 unc["referral_by_entropy"]["accuracy_kept"]))]
    return "\n".join(lines) + "\n"


def public_metrics(metrics: dict) -> dict:
    """``metrics`` without the plot-only full curves (kept out of ``metrics.json``)."""
    unc = metrics.get("uncertainty")
    if unc and "_curves" in unc:
        metrics = dict(metrics, uncertainty={k: v for k, v in unc.items() if k != "_curves"})
    return jsonable(metrics)
