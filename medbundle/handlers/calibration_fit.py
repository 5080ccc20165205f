"""Fit temperature, operating threshold and conformal quantile on an evaluator's (validation) outputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from ignite.engine import Engine

from medbundle.calibration import fit_calibration, resolve_positive_class, save_calibration
from medbundle.errors import OptionError
from medbundle.handlers.predictions_writer import PredictionsWriter
from medbundle.inferers import averaged_views
from medbundle.metrics.threshold import parse_threshold_rule
from medbundle.runtime import is_rank_zero

__all__ = ["CalibrationFit"]

logger = logging.getLogger("medbundle.handlers")


class CalibrationFit(PredictionsWriter):
    """Collect a labelled evaluator's probabilities and, when it completes, write ``calibration.json``.

    See :func:`medbundle.calibration.fit_calibration` for what is fitted and :func:`save_calibration` for the file
    (written atomically, with the SHA-256 of ``model_path``). Evaluation runs this on the validation split before
    scoring the test split with the record unchanged.

    Args:
        calibration_path: the record to write (``calibration.json`` beside the model).
        model_path: the model file the record belongs to.
        class_names: names of the classes, in output order.
        positive_class: the class of the binary decision (a name; ``None``: the last class of a 2-class bundle).
        threshold_rule: ``"youden"``, ``"sensitivity:<target>"``, ``"specificity:<target>"`` or ``"fixed:<value>"``.
        alpha: conformal miscoverage rate (sets aim at ``1 - alpha`` coverage).
        split: the name of the split scored (recorded).
        kwargs: ``output_transform`` and ``batch_transform`` of :class:`~medbundle.handlers.PredictionsWriter`.
    """

    def __init__(self, calibration_path: str, model_path: str, class_names: Sequence[str], positive_class: Any = None,
                 threshold_rule: str = "youden", alpha: float = 0.1, split: str = "val", **kwargs: Any) -> None:
        super().__init__(".", class_names, **kwargs)
        try:
            resolve_positive_class(positive_class, class_names)
            parse_threshold_rule(threshold_rule)
            alpha = float(alpha)
        except (TypeError, ValueError) as e:
            raise OptionError(str(e)) from e
        if not 0.0 < alpha < 1.0:
            raise OptionError(f"conformal_alpha {alpha} is not in (0, 1): pass e.g. 0.1 for 90 % prediction sets "
                              "(evaluate key conformal_alpha)")
        self.calibration_path, self.model_path = calibration_path, model_path
        self.positive_class, self.threshold_rule, self.alpha, self.split = positive_class, threshold_rule, alpha, split
        self.record: dict | None = None

    def __call__(self, engine: Engine) -> None:
        if not is_rank_zero():
            return
        if len(self.labels) != len(self.ids) or not self.ids:
            raise ValueError(f"CalibrationFit needs a label for every {self.split} image: the {self.split} split "
                             "has unlabelled or no items")
        record = fit_calibration(np.asarray(self.labels), np.stack(self.probs), self.class_names,
                                 positive_class=self.positive_class, threshold_rule=self.threshold_rule,
                                 alpha=self.alpha, split=self.split)
        # the views inference must average for this record to apply (inference.json reads it: calibrated_views)
        record["test_time_views"] = averaged_views(getattr(engine, "inferer", None))
        self.record = save_calibration(self.calibration_path, record, self.model_path)
