"""The full evaluation report of a labelled test set, written when the evaluator completes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ignite.engine import Engine

from medbundle.calibration import resolve_positive_class
from medbundle.data.split_check import split_warning
from medbundle.errors import OptionError
from medbundle.handlers.predictions_writer import PredictionsWriter
from medbundle.inferers import averaged_views
from medbundle.report import write_classification_report
from medbundle.runtime import is_rank_zero

__all__ = ["ClassificationReport"]


class ClassificationReport(PredictionsWriter):
    """Write the full evaluation report of a labelled test set when the evaluator completes.

    See :func:`medbundle.report.write_classification_report` for the files (metrics JSON,
    classification report, confusion matrix, ROC and reliability plots, training curves from
    ``log_csv``, predictions CSV; with a calibration record the clinical plots too).

    Args:
        output_dir: folder of the report.
        class_names: names of the classes, in output order.
        log_csv: the training run's epoch log, drawn as training curves when it exists.
        positive_class: the binary decision's class when there is no calibration record (``None``: the last of 2).
        prevalence: prevalence of the positive class for PPV / NPV (``None``: the test set's).
        split_check: the run's ``split_check.json`` (:mod:`medbundle.data.split_check`): unless it says the split is
            subject-clean (missing: not known), the report opens with "figures may be optimistic: images of one subject
            can be in both training and test" and says why; None: no split check (a report of data that is not a split).
        kwargs: ``output_transform``, ``batch_transform``, ``calibration_path``, ``model_path`` and ``uncertainty``
            of :class:`~medbundle.handlers.PredictionsWriter` (the record, read when the evaluator completes, and
            the entropies are used by the report).
    """

    def __init__(self, output_dir: str, class_names: Sequence[str], log_csv: str | None = None,
                 positive_class: Any = None, prevalence: float | None = None, split_check: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(output_dir, class_names, **kwargs)
        if prevalence is not None and not 0.0 < float(prevalence) < 1.0:
            raise OptionError(f"prevalence {prevalence} is not in (0, 1): pass the positive class's prevalence, "
                              "e.g. 0.05, or null for the test set's (evaluate key prevalence)")
        try:
            resolve_positive_class(positive_class, class_names)
        except ValueError as e:
            raise OptionError(str(e)) from e
        self.log_csv = log_csv
        self.positive_class = positive_class
        self.prevalence = None if prevalence is None else float(prevalence)
        self.split_check = split_check
        self.metrics: dict = {}

    def __call__(self, engine: Engine) -> None:
        if not is_rank_zero():
            return
        if len(self.labels) != len(self.ids):
            raise ValueError("ClassificationReport needs a label for every item: use PredictionsWriter for unlabelled data")
        self.metrics = write_classification_report(
            self.output_dir,
            np.asarray(self.labels),
            np.stack(self.probs),
            self.class_names,
            ids=self.ids,
            log_csv=self.log_csv,
            calibration=self.calibration(engine),
            entropy=self.entropy(),
            uncertainty=None if self.uncertainty is None else self.uncertainty.describe(),
            prevalence=self.prevalence,
            positive_class=self.positive_class,
            warning=None if self.split_check is None else split_warning(self.split_check),
            test_time_views=averaged_views(getattr(engine, "inferer", None)),
        )
