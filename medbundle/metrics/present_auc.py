"""Macro one-vs-rest ROC AUC over the classes present: MONAI's ``ROCAUCMetric`` is NaN when one class is absent.

A subject-grouped split of a data set with few subjects of one class (two ModerateDemented subjects in the Kaggle
Alzheimer MRI) can leave that class out of validation; MONAI's macro average is then NaN at every epoch, and a NaN
key metric never improves. :class:`PresentClassesROCAUCMetric` averages the classes that have both positives and
negatives in the labels, as the evaluation report does. Use it in a config through MONAI's ignite wrapper::

    {"_target_": "IgniteMetricHandler", "metric_fn": {"_target_": "medbundle.metrics.PresentClassesROCAUCMetric"},
     "output_transform": "$monai.handlers.from_engine(['pred', 'label'])", "save_details": false}
"""

from __future__ import annotations

import warnings

import numpy as np
from monai.metrics import ROCAUCMetric

__all__ = ["PresentClassesROCAUCMetric"]


class PresentClassesROCAUCMetric(ROCAUCMetric):
    """``ROCAUCMetric`` whose macro average leaves out classes without both positives and negatives in ``y``.

    NaN only when no class can be scored (a single class in the labels).
    """

    def __init__(self) -> None:
        super().__init__(average="none")

    def aggregate(self, average: str | None = None) -> float:  # type: ignore[override]
        with warnings.catch_warnings():  # MONAI warns once per absent class per call; absent classes are expected here
            warnings.filterwarnings("ignore", message="y values can not be all")
            per_class = np.atleast_1d(np.asarray(super().aggregate(average="none"), dtype=float))
        scored = per_class[np.isfinite(per_class)]
        return float(scored.mean()) if scored.size else float("nan")
