"""Evaluation report of a classifier: metrics JSON, text report, plots and a predictions CSV.

Everything here works on plain numpy arrays (``y_true`` integer labels of shape ``(N,)`` and
``probs`` class probabilities of shape ``(N, C)``), so it can be called from an Ignite handler,
a bundle workflow or a notebook alike.

Every file is written through :func:`medbundle.utils.atomic_write`, so a process killed while
writing leaves the previous file (or none), never a truncated one.

Plots use matplotlib's object-oriented API (:class:`matplotlib.figure.Figure` with an explicit
Agg canvas): nothing touches ``pyplot`` or the global backend, so the report is safe to call on
headless machines and from processes that also use ``pyplot`` interactively.

Main entry point: :func:`write_classification_report`.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medbundle.utils import (
    agg_figure,
    atomic_write,
    atomic_write_csv,
    atomic_write_json,
    jsonable,
    save_png,
    to_numpy,
    wrap_label,
)

__all__ = [
    "classification_metrics",
    "expected_calibration_error",
    "write_predictions_csv",
    "plot_confusion_matrix",
    "plot_roc",
    "read_training_log",
    "plot_training_curves",
    "plot_reliability_diagram",
    "write_classification_report",
]

logger = logging.getLogger("medbundle.report")

_DPI = 130

# file names written by write_classification_report
METRICS_JSON = "metrics.json"
REPORT_TXT = "classification_report.txt"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc.png"
RELIABILITY_PNG = "reliability.png"
PREDICTIONS_CSV = "predictions.csv"
TRAINING_CURVES_PNG = "training_curves.png"


# ----------------------------------------------------------------------------------------------
# input checks and small helpers
# ----------------------------------------------------------------------------------------------
def _as_arrays(y_true: Any, probs: Any, class_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``y_true`` (N,) and ``probs`` (N, C) to numpy arrays."""
    probs = to_numpy(probs).astype(np.float64, copy=False)
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, C), got {probs.shape}.")
    n, c = probs.shape
    if n == 0:
        raise ValueError("probs is empty: nothing to evaluate.")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contains NaN or infinite values.")
    if class_names is not None:
        if len(class_names) != c:
            raise ValueError(f"{len(class_names)} class names for {c} probability columns.")
        if len(set(map(str, class_names))) != c:
            raise ValueError(f"class names must be unique, got {list(class_names)}.")
    if y_true is None:
        return None, probs  # type: ignore[return-value]
    y = to_numpy(y_true).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"y_true has {y.shape[0]} labels but probs has {n} rows.")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("y_true must hold integer class indices.")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"y_true values must be in [0, {c - 1}], got range [{y.min()}, {y.max()}].")
    return y, probs


def _finite_or_none(x: Any) -> float | None:
    """A python float, or ``None`` for NaN / inf (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _safe_div(a: float, b: float) -> float | None:
    return float(a) / float(b) if b > 0 else None


def _binary_auc(pos: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of ``score`` for the boolean target ``pos``; ``None`` when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if pos.all() or not pos.any():
        return None
    return float(roc_auc_score(pos.astype(np.int64), score))


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------
def classification_metrics(y_true: Any, probs: Any, class_names: Sequence[str]) -> dict:
    """Compute a JSON-ready set of classification metrics from labels and class probabilities.

    The prediction is ``argmax(probs, axis=1)``. All sklearn calls use ``labels=range(C)``, so
    classes absent from ``y_true`` (small or filtered test sets) never crash the computation:
    their AUC, sensitivity and NPV are ``None`` (JSON ``null``) and they count with zero recall and
    F1 in the macro / weighted averages, exactly as sklearn's ``classification_report`` does.

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
        (mean recall over the classes present in ``y_true``, as sklearn), ``macro_f1``,
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
        "macro_f1": averages["macro"]["f1"],
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


# ----------------------------------------------------------------------------------------------
# predictions CSV
# ----------------------------------------------------------------------------------------------
def write_predictions_csv(
    path: str | os.PathLike, ids: Sequence[Any] | None, probs: Any, class_names: Sequence[str], y_true: Any = None
) -> None:
    """Write one row per sample with the prediction, its confidence and every class probability.

    Columns: ``id``, then ``label`` and ``label_name`` when ``y_true`` is given, then ``pred``,
    ``pred_name``, ``confidence`` (the top probability) and ``prob_<class name>`` for each class.
    The file is written atomically.

    Args:
        path: output CSV path; parent folders are created.
        ids: one identifier per row (file name, case id, ...); ``None`` numbers the rows 0..N-1.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` unique class names.
        y_true: optional integer class indices, shape ``(N,)``.
    """
    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    n = p.shape[0]
    if ids is None:
        ids = list(range(n))
    ids = list(to_numpy(ids).reshape(-1)) if not isinstance(ids, (list, tuple)) else list(ids)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} rows of probabilities.")
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"id": ids[i]}
        if y is not None:
            row.update(label=int(y[i]), label_name=names[y[i]])
        row.update(pred=int(pred[i]), pred_name=names[pred[i]], confidence=f"{conf[i]:.6g}")
        row.update({f"prob_{c}": f"{v:.6g}" for c, v in zip(names, p[i])})
        rows.append(row)
    atomic_write_csv(path, rows)


# ----------------------------------------------------------------------------------------------
# confusion matrix
# ----------------------------------------------------------------------------------------------
def plot_confusion_matrix(
    cm: Any, class_names: Sequence[str], path: str | os.PathLike, normalize: bool = True, title: str | None = None
) -> None:
    """Draw a confusion matrix heat map and save it as PNG (atomically).

    Rows are true classes, columns predicted classes. With ``normalize=True`` the colour is the
    row-normalised fraction (recall on the diagonal) and every cell shows its count and row
    percentage; with ``normalize=False`` the colour is the raw count and cells show counts only.

    Args:
        cm: square confusion matrix ``(C, C)`` of counts (nested list or array).
        class_names: ``C`` class names.
        path: output PNG path.
        normalize: colour by row-normalised fractions and show percentages.
        title: figure title; defaults to ``"Confusion matrix (n=...)"``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    c = len(class_names)
    if cm.shape != (c, c):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {c} class names.")
    row_sum = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, row_sum, out=np.zeros_like(cm), where=row_sum > 0)
    values = frac if normalize else cm
    vmax = 1.0 if normalize else max(float(cm.max()), 1.0)

    side = float(np.clip(1.6 + 0.75 * c, 4.5, 22.0))
    cell_font = float(np.clip(11 - 0.35 * c, 5, 10))
    tick_font = float(np.clip(11 - 0.2 * c, 6, 10))
    labels = [wrap_label(n) for n in class_names]
    with agg_figure(figsize=(side + 1.4, side)) as fig:
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label("fraction of true class" if normalize else "count")
        if normalize:
            cbar.ax.yaxis.set_major_formatter(_percent_formatter())
        if c <= 40:
            for i in range(c):
                for j in range(c):
                    count = int(round(cm[i, j]))
                    show_pct = normalize and row_sum[i, 0] > 0 and count > 0
                    text = f"{count}\n{100 * frac[i, j]:.1f}%" if show_pct else f"{count}"
                    color = "white" if values[i, j] > 0.55 * vmax else "black"
                    ax.text(j, i, text, ha="center", va="center", color=color, fontsize=cell_font)
        ax.set_xticks(range(c))
        ax.set_yticks(range(c))
        rotate = c > 3 or max(len(str(n)) for n in class_names) > 8
        ax.set_xticklabels(labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=tick_font)
        ax.set_yticklabels(labels, fontsize=tick_font)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(title or f"Confusion matrix (n={int(cm.sum())})")
        # thin white grid between cells
        ax.set_xticks(np.arange(-0.5, c, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, c, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        save_png(fig, path, _DPI)


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


# ----------------------------------------------------------------------------------------------
# ROC
# ----------------------------------------------------------------------------------------------
def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_roc(y_true: Any, probs: Any, class_names: Sequence[str], path: str | os.PathLike) -> None:
    """Draw one-vs-rest ROC curves with their AUC in the legend and save them as PNG (atomically).

    For 2 classes a single curve is drawn for the positive class (index 1). A class absent from
    ``y_true`` (or present in every sample) has no ROC curve; it is listed in the legend as
    ``"n/a"``. The figure is written even when no curve can be drawn.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` class names.
        path: output PNG path.
    """
    from sklearn.metrics import roc_curve

    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    c = p.shape[1]
    classes = [1] if c == 2 else list(range(c))
    colors = _colors(len(classes))
    with agg_figure(figsize=(6.8 if len(classes) <= 10 else 8.8, 6.0)) as fig:
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUC = 0.500)")
        drawn = 0
        for color, k in zip(colors, classes):
            pos = y == k
            auc = _binary_auc(pos, p[:, k])
            label = names[k] if c > 2 else f"{names[1]} vs {names[0]}"
            if auc is None:
                why = "not in y_true" if not pos.any() else "no negatives in y_true"
                ax.plot([], [], color=color, linewidth=2, label=f"{label} (AUC n/a: {why})")
                continue
            fpr, tpr, _ = roc_curve(pos.astype(np.int64), p[:, k])
            ax.plot(fpr, tpr, color=color, linewidth=2, label=f"{label} (AUC = {auc:.3f})")
            drawn += 1
        if drawn == 0:
            ax.text(0.5, 0.5, "ROC undefined:\nonly one class present in y_true", ha="center", va="center",
                    transform=ax.transAxes, fontsize=11, color="0.3")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("False positive rate (1 - specificity)")
        ax.set_ylabel("True positive rate (sensitivity)")
        ax.set_title("ROC curve" if c == 2 else "One-vs-rest ROC curves")
        ax.grid(alpha=0.3)
        if len(classes) <= 10:
            ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        else:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, framealpha=0.9)
        save_png(fig, path, _DPI)


# ----------------------------------------------------------------------------------------------
# training curves
# ----------------------------------------------------------------------------------------------
def read_training_log(log_csv: str | os.PathLike | None) -> Any:
    """Read the per-epoch CSV training log into a clean :class:`pandas.DataFrame`.

    Malformed lines (for example a last line cut by a kill) are skipped, values are coerced to
    numbers (unparsable ones become NaN), and when a resumed run repeated epochs the *last* row of
    each epoch is kept. Rows are sorted by epoch. Without an ``epoch`` column rows are numbered
    from 1.

    Args:
        log_csv: path of the CSV log (columns ``epoch``, ``train_loss``, ``lr``, ``val_<metric>``...).

    Returns:
        the DataFrame, or ``None`` when the file is missing, empty or has no data rows.
    """
    import pandas as pd

    if log_csv is None:
        return None
    path = Path(log_csv)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        df = pd.read_csv(path, on_bad_lines="skip", skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        logger.warning("could not read training log %s: %s", path, e)
        return None
    df.columns = [str(col).strip() for col in df.columns]
    df = df.apply(pd.to_numeric, errors="coerce")
    if "epoch" in df.columns:
        df = df[df["epoch"].notna()]
        df = df.drop_duplicates(subset="epoch", keep="last").sort_values("epoch", kind="stable")
    else:
        df = df.assign(epoch=np.arange(1, len(df) + 1))
    df = df.dropna(axis=1, how="all") if len(df) else df
    if len(df) == 0 or "epoch" not in df.columns:
        return None
    return df.reset_index(drop=True)


def plot_training_curves(log_csv: str | os.PathLike | None, path: str | os.PathLike) -> bool:
    """Plot the training log: losses (left), validation metrics (middle), learning rate (right).

    Columns ending in ``loss`` (``train_loss``, ``val_loss``...) go to the left panel, the other
    ``val_<metric>`` columns to the middle one and ``lr`` (log scale) to the right one. Missing
    values are skipped per series (points are marked, so isolated values stay visible) and
    repeated epochs of a resumed run keep their last row (see :func:`read_training_log`).

    Args:
        log_csv: path of the per-epoch CSV log written during training.
        path: output PNG path.

    Returns:
        ``True`` when the figure was written, ``False`` (and nothing written) when the log is
        missing, empty or has no data rows.
    """
    from matplotlib.ticker import MaxNLocator

    df = read_training_log(log_csv)
    if df is None:
        return False
    x = df["epoch"].to_numpy()
    loss_cols = [col for col in df.columns if col.lower().endswith("loss")]
    val_cols = [col for col in df.columns if col.startswith("val_") and col not in loss_cols]
    lr_cols = [col for col in df.columns if col == "lr" or col.startswith("lr_")]
    panels = [("Loss", loss_cols, False), ("Validation metrics", val_cols, False), ("Learning rate", lr_cols, True)]
    marker = "o" if len(df) <= 60 else None

    with agg_figure(figsize=(15.0, 4.4), layout="constrained") as fig:
        axes = fig.subplots(1, 3)
        for ax, (title, cols, log_scale) in zip(axes, panels):
            plotted = False
            colors = _colors(max(len(cols), 1))
            for color, col in zip(colors, cols):
                s = df[col].to_numpy(dtype=np.float64)
                ok = np.isfinite(s)
                if log_scale:
                    ok &= s > 0
                if not ok.any():
                    continue
                label = col[4:] if col.startswith("val_") and title.startswith("Validation") else col
                ax.plot(x[ok], s[ok], marker=marker, markersize=3.5, linewidth=1.6, color=color, label=label)
                if not title.startswith("Learning"):
                    best = int(np.nanargmin(np.where(ok, s, np.nan)) if "loss" in col.lower()
                               else np.nanargmax(np.where(ok, s, np.nan)))
                    ax.plot([x[best]], [s[best]], marker="*", markersize=11, color=color, linestyle="none")
                plotted = True
            if plotted and log_scale:
                ax.set_yscale("log")
            if not plotted:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
            elif len(cols) > 1 or not log_scale:
                ax.legend(fontsize=8, framealpha=0.9)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3, which="both" if log_scale else "major")
        fig.suptitle(f"Training curves ({len(df)} epochs; \u2605 = best)")
        save_png(fig, path, _DPI)
    return True


# ----------------------------------------------------------------------------------------------
# reliability diagram
# ----------------------------------------------------------------------------------------------
def plot_reliability_diagram(y_true: Any, probs: Any, path: str | os.PathLike, n_bins: int = 10) -> dict:
    """Draw a reliability diagram (accuracy vs confidence per bin, with a histogram) as PNG.

    Uses the same binning as :func:`expected_calibration_error`. The top panel shows the accuracy
    of each non-empty confidence bin against the diagonal of perfect calibration, with the gap to
    the mean bin confidence shaded; the bottom panel is the histogram of top-label confidences.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        path: output PNG path.
        n_bins: number of equal-width confidence bins.

    Returns:
        ``{"ece": float, "mce": float}`` (expected and maximum calibration error).
    """
    stats = _calibration_bins(y_true, probs, n_bins)
    edges, count = stats["edges"], stats["count"]
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    ok = count > 0
    acc, conf = stats["accuracy"], stats["confidence"]

    with agg_figure(figsize=(6.0, 7.2), layout="constrained") as fig:
        ax, hx = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1, label="perfect calibration")
        ax.bar(centers[ok], acc[ok], width=width * 0.95, color="#4C72B0", edgecolor="black", linewidth=0.6,
               label="accuracy")
        gap_lo = np.minimum(acc[ok], conf[ok])
        ax.bar(centers[ok], np.abs(conf[ok] - acc[ok]), bottom=gap_lo, width=width * 0.95, color="#DD8452",
               alpha=0.45, edgecolor="#C44E52", hatch="//", linewidth=0.6, label="|accuracy - confidence|")
        ax.plot(conf[ok], acc[ok], "o", color="black", markersize=4, label="(mean confidence, accuracy)")
        ax.text(0.04, 0.96, f"ECE = {stats['ece']:.3f}\nMCE = {stats['mce']:.3f}\nn = {int(count.sum())}",
                transform=ax.transAxes, ha="left", va="top", fontsize=10,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9, "edgecolor": "0.7"})
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("Accuracy")
        ax.set_title(f"Reliability diagram ({len(count)} bins)")
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        ax.grid(alpha=0.3)
        hx.bar(centers, count, width=width * 0.95, color="0.55", edgecolor="black", linewidth=0.6)
        hx.set_xlabel("Confidence (top-class probability)")
        hx.set_ylabel("Samples")
        hx.grid(alpha=0.3)
        save_png(fig, path, _DPI)
    return {"ece": stats["ece"], "mce": stats["mce"]}


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------
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
    lines.append(f"accuracy           : {_fmt(metrics['accuracy'])}")
    lines.append(f"balanced accuracy  : {_fmt(metrics['balanced_accuracy'])}")
    lines.append(f"macro F1           : {_fmt(metrics['macro_f1'])}")
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


def write_classification_report(
    output_dir: str | os.PathLike,
    y_true: Any,
    probs: Any,
    class_names: Sequence[str],
    ids: Sequence[Any] | None = None,
    log_csv: str | os.PathLike | None = None,
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
      (names of the files written, ``metrics.json`` included).

    Args:
        output_dir: report folder, created when missing.
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` unique class names.
        ids: optional sample identifiers for the predictions CSV (default: row numbers).
        log_csv: optional per-epoch training log CSV.

    Returns:
        the metrics dict written to ``metrics.json``.
    """
    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    metrics = classification_metrics(y, p, names)
    files: list[str] = []

    plot_confusion_matrix(metrics["confusion_matrix"], names, out / CONFUSION_PNG, normalize=True)
    files.append(CONFUSION_PNG)
    plot_roc(y, p, names, out / ROC_PNG)
    files.append(ROC_PNG)
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
    write_predictions_csv(out / PREDICTIONS_CSV, ids, p, names, y_true=y)
    files.append(PREDICTIONS_CSV)
    with atomic_write(out / REPORT_TXT, "w", encoding="utf-8") as f:
        f.write(_report_text(y, p, names, metrics))
    files.append(REPORT_TXT)
    files.append(METRICS_JSON)
    metrics["files"] = files
    metrics = jsonable(metrics)
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
