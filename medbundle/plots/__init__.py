"""Plots of a classifier's evaluation, one file per plot family, all written atomically as PNG.

- :mod:`medbundle.plots.confusion`: :func:`plot_confusion_matrix`.
- :mod:`medbundle.plots.roc`: :func:`plot_roc`.
- :mod:`medbundle.plots.reliability`: :func:`plot_reliability_diagram`.
- :mod:`medbundle.plots.reliability_comparison`: :func:`plot_reliability_comparison` (before / after calibration).
- :mod:`medbundle.plots.precision_recall`: :func:`plot_precision_recall`.
- :mod:`medbundle.plots.referral`: :func:`plot_referral` (accuracy against referral rate).
- :mod:`medbundle.plots.training_curves`: :func:`read_training_log`, :func:`plot_training_curves`.
- :mod:`medbundle.plots.figure`: shared figure helpers (:func:`agg_figure`, :func:`save_png`,
  :func:`wrap_label`).

Plots use matplotlib's object-oriented API with an explicit Agg canvas (never ``pyplot``), and
matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from medbundle.plots.confusion import plot_confusion_matrix
from medbundle.plots.figure import agg_figure, save_png, wrap_label
from medbundle.plots.precision_recall import plot_precision_recall
from medbundle.plots.referral import plot_referral
from medbundle.plots.reliability import plot_reliability_diagram
from medbundle.plots.reliability_comparison import plot_reliability_comparison
from medbundle.plots.roc import plot_roc
from medbundle.plots.training_curves import plot_training_curves, read_training_log

__all__ = [
    "agg_figure",
    "save_png",
    "wrap_label",
    "plot_confusion_matrix",
    "plot_roc",
    "plot_reliability_diagram",
    "plot_reliability_comparison",
    "plot_precision_recall",
    "plot_referral",
    "read_training_log",
    "plot_training_curves",
]
