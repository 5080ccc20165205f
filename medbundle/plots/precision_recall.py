"""One-vs-rest precision-recall curves with their average precision and operating points as PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medbundle.metrics.utils import _as_arrays
from medbundle.plots.figure import _DPI, _colors, agg_figure, save_png

__all__ = ["plot_precision_recall"]


def plot_precision_recall(y_true: Any, probs: Any, class_names: Sequence[str], path: str | os.PathLike,
                          operating_points: Mapping[int, tuple[float, float]] | None = None) -> None:
    """Draw one-vs-rest precision-recall curves (average precision in the legend) and save them as PNG.

    For 2 classes a single curve is drawn for class 1 (or for the class of the one operating point given). A
    class absent from ``y_true`` has no curve. Each class's prevalence is drawn as its chance level.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: class probabilities, shape ``(N, C)``.
        class_names: ``C`` class names.
        path: output PNG path.
        operating_points: ``{class index: (recall, precision)}`` of the decisions taken, marked on the curves.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    c = p.shape[1]
    points = dict(operating_points or {})
    classes = ([next(iter(points))] if len(points) == 1 else [1]) if c == 2 else list(range(c))
    colors = _colors(len(classes))
    with agg_figure(figsize=(6.8 if len(classes) <= 10 else 8.8, 6.0)) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for color, k in zip(colors, classes):
            pos = y == k
            label = names[k] if c > 2 else f"{names[k]} vs {names[1 - k]}"
            if pos.all() or not pos.any():
                ax.plot([], [], color=color, linewidth=2, label=f"{label} (AP n/a: one class only)")
                continue
            prec, rec, _ = precision_recall_curve(pos.astype(np.int64), p[:, k])
            ap = average_precision_score(pos.astype(np.int64), p[:, k])
            ax.plot(rec, prec, color=color, linewidth=2, drawstyle="steps-post", label=f"{label} (AP = {ap:.3f})")
            ax.axhline(pos.mean(), color=color, linestyle=":", linewidth=1)
            if k in points and None not in points[k]:
                ax.plot(*points[k], marker="o", markersize=9, markeredgecolor="black", color=color, linestyle="none")
        if points:
            ax.plot([], [], marker="o", markeredgecolor="black", color="white", linestyle="none",
                    label="operating point")
        ax.plot([], [], color="0.5", linestyle=":", label="chance (prevalence)")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("Recall (sensitivity)")
        ax.set_ylabel("Precision (PPV)")
        ax.set_title("Precision-recall curve" if c == 2 else "One-vs-rest precision-recall curves")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
        save_png(fig, path, _DPI)
