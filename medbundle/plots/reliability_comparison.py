"""Reliability diagrams before and after temperature scaling, side by side, as PNG."""

from __future__ import annotations

import os
from typing import Any

from medbundle.metrics.calibration import _calibration_bins
from medbundle.plots.figure import _DPI, agg_figure, save_png
from medbundle.plots.reliability import _draw_reliability

__all__ = ["plot_reliability_comparison"]


def plot_reliability_comparison(y_true: Any, probs_before: Any, probs_after: Any, path: str | os.PathLike,
                                n_bins: int = 10, temperature: float | None = None) -> dict:
    """Draw the reliability diagram of the model's probabilities (left) and of the calibrated ones (right).

    Both panels use the binning of :func:`~medbundle.metrics.expected_calibration_error`.

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs_before: the model's class probabilities, shape ``(N, C)``.
        probs_after: the calibrated class probabilities, shape ``(N, C)``.
        path: output PNG path.
        n_bins: number of equal-width confidence bins.
        temperature: the fitted temperature, shown in the right panel's title.

    Returns:
        ``{"before": {"ece", "mce"}, "after": {"ece", "mce"}}``.
    """
    before = _calibration_bins(y_true, probs_before, n_bins)
    after = _calibration_bins(y_true, probs_after, n_bins)
    t = "" if temperature is None else f", T = {float(temperature):.3g}"
    with agg_figure(figsize=(11.5, 7.2), layout="constrained") as fig:
        axes = fig.subplots(2, 2, sharex=True, height_ratios=[3, 1])
        _draw_reliability(axes[0, 0], axes[1, 0], before, "Before calibration")
        _draw_reliability(axes[0, 1], axes[1, 1], after, f"After temperature scaling{t}")
        fig.suptitle(f"Reliability diagrams ({n_bins} bins)")
        save_png(fig, path, _DPI)
    return {name: {"ece": s["ece"], "mce": s["mce"]} for name, s in (("before", before), ("after", after))}
