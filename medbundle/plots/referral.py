"""Accuracy on the images kept against the fraction referred to a clinician, as PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from medbundle.plots.figure import _DPI, _colors, agg_figure, save_png

__all__ = ["plot_referral"]


def plot_referral(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
                  points: Mapping[str, tuple[float, float]] | None = None, max_rate: float = 0.6) -> None:
    """Draw accuracy-vs-referral curves (see :func:`medbundle.metrics.referral_curve`) and single referral points.

    Args:
        curves: ``{label: (referral rates, accuracy on kept images)}``, e.g. referral by predictive entropy.
        path: output PNG path.
        points: ``{label: (referral rate, accuracy on kept images)}``, e.g. conformal sets that are not one class.
        max_rate: right end of the x axis (at least the largest point).
    """
    points = dict(points or {})
    right = max([max_rate] + [r for r, _ in points.values() if r is not None])
    colors = _colors(len(curves) + len(points))
    with agg_figure(figsize=(6.8, 5.2)) as fig:
        ax = fig.add_subplot(1, 1, 1)
        lows = []
        for color, (label, (rates, acc)) in zip(colors, curves.items()):
            keep = [(r, a) for r, a in zip(rates, acc) if r <= right + 1e-9]
            if keep:
                ax.plot(*zip(*keep), color=color, linewidth=2, label=label)
                lows.append(min(a for _, a in keep))
        for color, (label, (rate, acc)) in zip(colors[len(curves):], points.items()):
            if rate is None or acc is None:
                continue
            ax.plot([rate], [acc], marker="D", markersize=9, markeredgecolor="black", color=color,
                    linestyle="none", label=f"{label} ({100 * rate:.0f}% referred, accuracy {acc:.3f})")
            lows.append(acc)
        low = min(lows) if lows else 0.0
        ax.set_xlim(0, right * 1.02)
        ax.set_ylim(max(0.0, low - 0.05), 1.005)
        ax.set_xlabel("Referral rate (fraction of images sent to a clinician)")
        ax.set_ylabel("Accuracy on the images kept")
        ax.set_title("Accuracy against referral")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        save_png(fig, path, _DPI)
