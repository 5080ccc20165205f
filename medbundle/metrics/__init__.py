"""Metrics of a classifier on plain numpy arrays (labels ``(N,)``, class probabilities ``(N, C)``).

- :mod:`medbundle.metrics.classification`: :func:`classification_metrics` (accuracy, F1, kappa,
  AUC, per-class sensitivity / specificity / PPV / NPV, confusion matrix).
- :mod:`medbundle.metrics.calibration`: :func:`expected_calibration_error` and its binning.
- :mod:`medbundle.metrics.utils`: input checks shared by the metrics and the plots.
"""

from __future__ import annotations

from medbundle.metrics.calibration import expected_calibration_error
from medbundle.metrics.classification import classification_metrics

__all__ = ["classification_metrics", "expected_calibration_error"]
