"""The full evaluation report of a labelled test set, written when the evaluator completes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ignite.engine import Engine

from medbundle.handlers.predictions_writer import PredictionsWriter
from medbundle.report import write_classification_report
from medbundle.runtime import is_rank_zero

__all__ = ["ClassificationReport"]


class ClassificationReport(PredictionsWriter):
    """Write the full evaluation report of a labelled test set when the evaluator completes.

    See :func:`medbundle.report.write_classification_report` for the files (metrics JSON,
    classification report, confusion matrix, ROC and reliability plots, training curves from
    ``log_csv``, predictions CSV).

    Args:
        output_dir: folder of the report.
        class_names: names of the classes, in output order.
        log_csv: the training run's epoch log, drawn as training curves when it exists.
        kwargs: ``output_transform`` and ``batch_transform`` of :class:`~medbundle.handlers.PredictionsWriter`.
    """

    def __init__(self, output_dir: str, class_names: Sequence[str], log_csv: str | None = None, **kwargs: Any) -> None:
        super().__init__(output_dir, class_names, **kwargs)
        self.log_csv = log_csv
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
        )
