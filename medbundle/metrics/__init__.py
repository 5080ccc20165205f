"""Metrics of a classifier on plain numpy arrays (labels ``(N,)``, class probabilities ``(N, C)``).

- :mod:`medbundle.metrics.classification`: :func:`classification_metrics` (accuracy, F1, kappa,
  AUC, per-class sensitivity / specificity / PPV / NPV, confusion matrix).
- :mod:`medbundle.metrics.calibration`: :func:`expected_calibration_error` and its binning.
- :mod:`medbundle.metrics.intervals`: Wilson intervals for proportions, DeLong intervals for AUC.
- :mod:`medbundle.metrics.clinical`: :func:`clinical_statistics`, :func:`decision_statistics` (sensitivity,
  specificity, PPV, NPV, F1, accuracy, AUC with intervals; PPV / NPV at a given prevalence).
- :mod:`medbundle.metrics.threshold`: :func:`choose_threshold` (Youden, target sensitivity / specificity).
- :mod:`medbundle.metrics.temperature`: :func:`fit_temperature`, :func:`apply_temperature`,
  :func:`calibration_summary` (ECE, MCE, Brier, NLL).
- :mod:`medbundle.metrics.conformal`: split conformal :func:`conformal_quantile`, :func:`prediction_sets`,
  :func:`conformal_summary`.
- :mod:`medbundle.metrics.referral`: :func:`predictive_entropy`, :func:`referral_curve`.
- :mod:`medbundle.metrics.present_auc`: :class:`PresentClassesROCAUCMetric`, MONAI's ROC AUC metric averaged over
  the classes present (the training's ``val_auc``).
- :mod:`medbundle.metrics.utils`: input checks shared by the metrics and the plots.
"""

from __future__ import annotations

from medbundle.metrics.calibration import expected_calibration_error
from medbundle.metrics.classification import classification_metrics
from medbundle.metrics.clinical import clinical_statistics, decision_statistics, predictive_values_at_prevalence
from medbundle.metrics.conformal import conformal_quantile, conformal_summary, prediction_sets
from medbundle.metrics.intervals import delong_auc, delong_macro_auc, proportion_with_ci, wilson_interval
from medbundle.metrics.present_auc import PresentClassesROCAUCMetric
from medbundle.metrics.referral import predictive_entropy, referral_curve
from medbundle.metrics.temperature import apply_temperature, calibration_summary, fit_temperature
from medbundle.metrics.threshold import choose_threshold

__all__ = [
    "PresentClassesROCAUCMetric",
    "apply_temperature",
    "calibration_summary",
    "choose_threshold",
    "classification_metrics",
    "clinical_statistics",
    "conformal_quantile",
    "conformal_summary",
    "decision_statistics",
    "delong_auc",
    "delong_macro_auc",
    "expected_calibration_error",
    "fit_temperature",
    "predictive_entropy",
    "predictive_values_at_prevalence",
    "prediction_sets",
    "proportion_with_ci",
    "referral_curve",
    "wilson_interval",
]
