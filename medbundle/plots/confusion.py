"""Confusion matrix heat map (counts and row percentages) as PNG."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from medbundle.plots.figure import _DPI, _percent_formatter, agg_figure, save_png, wrap_label

__all__ = ["plot_confusion_matrix"]


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
