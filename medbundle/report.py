"""Evaluation report of a classifier: the evaluation folder (metrics JSON, text report, plots, predictions CSV).

Everything here works on plain numpy arrays (``y_true`` integer labels of shape ``(N,)`` and
``probs`` class probabilities of shape ``(N, C)``), so it can be called from an Ignite handler,
a bundle workflow or a notebook alike. The metrics live in :mod:`medbundle.metrics`, the plots
in :mod:`medbundle.plots`.

Every file is written through :func:`medbundle.utils.atomic_write`, so a process killed while
writing leaves the previous file (or none), never a truncated one.

Main entry point: :func:`write_classification_report`.
"""

from __future__ import annotations

import logging
import os
import textwrap
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from medbundle.clinical_report import clinical_sections, clinical_text, public_metrics, write_clinical_plots
from medbundle.metrics import classification_metrics
from medbundle.metrics.utils import _as_arrays, _finite_or_none
from medbundle.plots import plot_confusion_matrix, plot_reliability_diagram, plot_roc, plot_training_curves
from medbundle.utils import atomic_write, atomic_write_csv, atomic_write_json, to_numpy

__all__ = ["write_predictions_csv", "write_classification_report"]

logger = logging.getLogger("medbundle.report")

# file names written by write_classification_report
METRICS_JSON = "metrics.json"
REPORT_TXT = "classification_report.txt"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc.png"
RELIABILITY_PNG = "reliability.png"
PREDICTIONS_CSV = "predictions.csv"
TRAINING_CURVES_PNG = "training_curves.png"


def write_predictions_csv(
    path: str | os.PathLike,
    ids: Sequence[Any] | None,
    probs: Any,
    class_names: Sequence[str],
    y_true: Any = None,
    extra_columns: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """Write one row per sample with the prediction, its confidence and every class probability.

    Columns: ``id``, then ``label`` and ``label_name`` when ``y_true`` is given, then ``pred``,
    ``pred_name``, ``confidence`` (the top probability) and ``prob_<class name>`` for each class, then
    ``extra_columns`` (calibrated probabilities, prediction set, refer, entropy: see
    :func:`medbundle.calibration.calibration_columns`). The file is written atomically.

    Args:
        path: output CSV path; parent folders are created.
        ids: one identifier per row (file name, case id, ...); ``None`` numbers the rows 0..N-1.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` unique class names.
        y_true: optional integer class indices, shape ``(N,)``.
        extra_columns: optional ``{column: one value per row}`` appended after the probabilities.
    """
    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    n = p.shape[0]
    if ids is None:
        ids = list(range(n))
    ids = list(to_numpy(ids).reshape(-1)) if not isinstance(ids, (list, tuple)) else list(ids)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} rows of probabilities.")
    extra = dict(extra_columns or {})
    for name, values in extra.items():
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} values for {n} rows.")
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"id": ids[i]}
        if y is not None:
            row.update(label=int(y[i]), label_name=names[y[i]])
        row.update(pred=int(pred[i]), pred_name=names[pred[i]], confidence=f"{conf[i]:.6g}")
        row.update({f"prob_{c}": f"{v:.6g}" for c, v in zip(names, p[i])})
        row.update({name: values[i] for name, values in extra.items()})
        rows.append(row)
    atomic_write_csv(path, rows)


def _fmt(x: Any, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _report_text(y: np.ndarray, p: np.ndarray, names: list[str], metrics: dict) -> str:
    from sklearn.metrics import classification_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = classification_report(
            y, p.argmax(axis=1), labels=list(range(len(names))), target_names=names, digits=4, zero_division=0
        )
    lines = [text.rstrip(), ""]
    lines.append(f"n                  : {metrics['n']}")
    if metrics.get("test_time_views", 1) > 1:
        lines.append(f"predictions        : mean of {metrics['test_time_views']} test-time views per image")
    lines.append(f"accuracy           : {_fmt(metrics['accuracy'])}")
    lines.append(f"balanced accuracy  : {_fmt(metrics['balanced_accuracy'])}")
    present = sum(1 for name in names if metrics["per_class"][name]["support"] > 0)
    over = "" if present == len(names) else f" (over the {present} of {len(names)} classes with test images)"
    lines.append(f"macro F1           : {_fmt(metrics['macro_f1'])}{over}")
    lines.append(f"weighted F1        : {_fmt(metrics['weighted_f1'])}")
    lines.append(f"Cohen's kappa      : {_fmt(metrics['cohen_kappa'])}")
    lines.append(f"AUC (macro OvR)    : {_fmt(metrics['auc_macro_ovr'])}")
    lines.append(f"ECE ({metrics.get('ece_bins', 10)} bins)      : {_fmt(metrics['ece'])}")
    if metrics.get("mce") is not None:
        lines.append(f"MCE                : {_fmt(metrics['mce'])}")
    lines.append("")
    lines.append("per-class one-vs-rest:")
    w = max(max(len(n) for n in names), 5)
    lines.append(f"{'class':>{w}}  {'sens':>7} {'spec':>7} {'ppv':>7} {'npv':>7} {'auc':>7}")
    for name in names:
        pc = metrics["per_class"][name]
        vals = " ".join(f"{_fmt(pc[k]):>7}" for k in ("sensitivity", "specificity", "ppv", "npv", "auc"))
        lines.append(f"{name:>{w}}  {vals}")
    lines.append("")
    lines.append("confusion matrix (rows = true, columns = predicted):")
    cm = np.asarray(metrics["confusion_matrix"])
    cw = max(max(len(n) for n in names), len(str(int(cm.max()))) if cm.size else 1, 4)
    lines.append(" " * (w + 2) + " ".join(f"{n:>{cw}}" for n in names))
    for name, row in zip(names, cm):
        lines.append(f"{name:>{w}}  " + " ".join(f"{int(v):>{cw}}" for v in row))
    return "\n".join(lines) + "\n"


def _banner(warning: str | None) -> str:
    """``warning`` framed in a box of ``!`` for the top of the text report; empty without one."""
    if not warning:
        return ""
    rule = "!" * 100
    lines = textwrap.wrap(warning, 96)
    return "\n".join([rule, *(f"!! {line:<94} !!" for line in lines), rule]) + "\n\n"


def write_classification_report(
    output_dir: str | os.PathLike,
    y_true: Any,
    probs: Any,
    class_names: Sequence[str],
    ids: Sequence[Any] | None = None,
    log_csv: str | os.PathLike | None = None,
    *,
    calibration: dict | None = None,
    entropy: Any = None,
    uncertainty: dict | None = None,
    prevalence: float | None = None,
    positive_class: Any = None,
    warning: str | None = None,
    test_time_views: int = 1,
) -> dict:
    """Write the full evaluation report of a classifier into ``output_dir``.

    Files (each written atomically; ``metrics.json`` last, so its presence means the report is
    complete):

    - ``confusion_matrix.png``: heat map with counts and row percentages.
    - ``roc.png``: one-vs-rest ROC curves (single curve for 2 classes).
    - ``reliability.png``: reliability diagram with ECE / MCE.
    - ``training_curves.png``: loss, validation metrics and learning rate, only when ``log_csv``
      exists and has data.
    - ``predictions.csv``: see :func:`write_predictions_csv`.
    - ``classification_report.txt``: sklearn's report plus summary metrics and the confusion matrix.
    - ``metrics.json``: :func:`classification_metrics` plus ``mce``, ``ece_bins`` and ``files``
      (names of the files written, ``metrics.json`` included), and the clinical sections of
      :func:`medbundle.clinical_report.clinical_sections`: ``clinical`` (95 % intervals, methods named, the binary
      decision), ``calibration`` (temperature, ECE / MCE / Brier / NLL before and after), ``conformal``
      (coverage, set sizes, referral) and ``uncertainty`` (entropy, accuracy against referral rate).

    With a ``calibration`` record also ``precision_recall.png``, ``reliability_calibrated.png`` (before / after)
    and ``referral.png``, and ``predictions.csv`` gains calibrated probabilities, decision, prediction set and
    refer columns (``entropy`` too when given). ``roc.png`` marks the operating points.

    Args:
        output_dir: report folder, created when missing.
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` unique class names.
        ids: optional sample identifiers for the predictions CSV (default: row numbers).
        log_csv: optional per-epoch training log CSV.
        calibration: a record of :mod:`medbundle.calibration` fitted on the validation split, or None.
        entropy: optional predictive entropy per sample from several passes (test-time augmentation, MC dropout).
        uncertainty: ``{"method", "passes"}`` describing ``entropy``.
        prevalence: prevalence of the positive class for PPV / NPV (``None``: the test set's).
        positive_class: the binary decision's class when there is no calibration record (``None``: the last of 2).
        warning: a warning about the figures (e.g. a split not known to be subject-clean): framed in large print at the
            top of ``classification_report.txt``, in ``metrics.json`` as ``warning`` and in the log.
        test_time_views: how many test-time views each probability is the mean of
            (:class:`medbundle.inferers.TTAInferer`; 1: one pass), recorded in ``metrics.json``.

    Returns:
        the metrics dict written to ``metrics.json``.
    """
    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    metrics = classification_metrics(y, p, names)
    sections = clinical_sections(y, p, names, calibration=calibration, entropy=entropy, uncertainty=uncertainty,
                                 prevalence=prevalence, positive_class=positive_class)
    files: list[str] = []

    plot_confusion_matrix(metrics["confusion_matrix"], names, out / CONFUSION_PNG, normalize=True)
    files.append(CONFUSION_PNG)
    plot_roc(y, p, names, out / ROC_PNG, operating_points=sections["roc_points"])
    files.append(ROC_PNG)
    if calibration is not None:
        files += write_clinical_plots(out, y, p, names, sections)
    calib = plot_reliability_diagram(y, p, out / RELIABILITY_PNG, n_bins=10)
    files.append(RELIABILITY_PNG)
    metrics["ece"] = _finite_or_none(calib["ece"])
    metrics["mce"] = _finite_or_none(calib["mce"])
    metrics["ece_bins"] = 10
    if log_csv is not None:
        if plot_training_curves(log_csv, out / TRAINING_CURVES_PNG):
            files.append(TRAINING_CURVES_PNG)
        else:
            logger.info("no training curves: training log %s is missing or empty", log_csv)
    metrics.update(sections["metrics"])
    metrics["test_time_views"] = int(test_time_views)
    write_predictions_csv(out / PREDICTIONS_CSV, ids, p, names, y_true=y, extra_columns=sections["columns"])
    files.append(PREDICTIONS_CSV)
    if warning:
        metrics["warning"] = warning
        logger.warning("report: %s", warning)
    with atomic_write(out / REPORT_TXT, "w", encoding="utf-8") as f:
        f.write(_banner(warning) + _report_text(y, p, names, metrics) + clinical_text(metrics))
    files.append(REPORT_TXT)
    files.append(METRICS_JSON)
    metrics["files"] = files
    metrics = public_metrics(metrics)
    atomic_write_json(out / METRICS_JSON, metrics)

    logger.info(
        "report: n=%d accuracy=%s balanced_accuracy=%s macro_f1=%s auc=%s ece=%s -> %s",
        metrics["n"],
        _fmt(metrics["accuracy"]),
        _fmt(metrics["balanced_accuracy"]),
        _fmt(metrics["macro_f1"]),
        _fmt(metrics["auc_macro_ovr"]),
        _fmt(metrics["ece"]),
        out,
    )
    return metrics
