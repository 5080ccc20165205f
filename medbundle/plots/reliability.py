"""Reliability diagram (accuracy against confidence per bin, with a confidence histogram) as PNG."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from medbundle.metrics.calibration import _calibration_bins
from medbundle.plots.figure import _DPI, agg_figure, save_png

__all__ = ["plot_reliability_diagram"]


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
    with agg_figure(figsize=(6.0, 7.2), layout="constrained") as fig:
        ax, hx = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        _draw_reliability(ax, hx, stats, f"Reliability diagram ({len(stats['count'])} bins)")
        save_png(fig, path, _DPI)
    return {"ece": stats["ece"], "mce": stats["mce"]}


def _draw_reliability(ax: Any, hx: Any, stats: dict, title: str) -> None:
    """Draw one reliability panel (``ax``) and its confidence histogram (``hx``) from :func:`_calibration_bins`."""
    edges, count = stats["edges"], stats["count"]
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    ok = count > 0
    acc, conf = stats["accuracy"], stats["confidence"]
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
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    hx.bar(centers, count, width=width * 0.95, color="0.55", edgecolor="black", linewidth=0.6)
    hx.set_xlabel("Confidence (top-class probability)")
    hx.set_ylabel("Samples")
    hx.grid(alpha=0.3)
