"""One-vs-rest ROC curves with their AUC as PNG."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from medbundle.metrics.classification import _binary_auc
from medbundle.metrics.utils import _as_arrays
from medbundle.plots.figure import _DPI, _colors, agg_figure, save_png

__all__ = ["plot_roc"]


def plot_roc(y_true: Any, probs: Any, class_names: Sequence[str], path: str | os.PathLike,
             operating_points: Mapping[int, tuple[float, float]] | None = None) -> None:
    """Draw one-vs-rest ROC curves with their AUC in the legend and save them as PNG (atomically).

    For 2 classes a single curve is drawn for the positive class (index 1). A class absent from
    ``y_true`` (or present in every sample) has no ROC curve; it is listed in the legend as
    ``"n/a"``. The figure is written even when no curve can be drawn.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` class names.
        path: output PNG path.
        operating_points: optional ``{class index: (false positive rate, true positive rate)}`` of the decisions
            taken (argmax, or a threshold), marked on the curves; for 2 classes the point of class 1 is drawn.
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
            point = (operating_points or {}).get(k)
            if point is not None and None not in point:
                ax.plot(*point, marker="o", markersize=9, markeredgecolor="black", color=color, linestyle="none")
            drawn += 1
        if operating_points:
            ax.plot([], [], marker="o", markeredgecolor="black", color="white", linestyle="none",
                    label="operating point")
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
