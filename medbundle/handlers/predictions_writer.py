"""Collect an evaluator's class probabilities per item and write them as ``predictions.csv``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from medbundle.calibration import apply_calibration, calibration_columns, load_calibration
from medbundle.inferers import averaged_views
from medbundle.report import write_predictions_csv
from medbundle.runtime import is_rank_zero

__all__ = ["PredictionsWriter"]

logger = logging.getLogger("medbundle.handlers")


def _pred_and_label(output: list[dict]) -> tuple[list, list | None]:
    """``(pred, label)`` lists of a decollated engine output; label None unless every item carries one."""
    if all(item.get("label") is not None for item in output):
        return from_engine(["pred", "label"])(output)
    return from_engine(["pred"])(output), None


def _item_ids(batch: list[dict]) -> list[Any]:
    """The ``id`` of every item of a decollated batch, None where an item has none."""
    return [item.get("id") for item in batch]


class PredictionsWriter:
    """Collect an evaluator's class probabilities and write them as a CSV file at the end.

    Expects the evaluator's post-processing to leave class probabilities in ``pred`` of a decollated
    output (a list of dicts) and the batch to carry an ``id`` per item (the datalists of
    :func:`medbundle.data.load_datalists` do); an item without an id is named by its position.

    Args:
        output_dir: folder of the outputs (``predictions.csv``).
        class_names: names of the classes, in output order.
        output_transform: maps ``engine.state.output`` to ``(probabilities, labels)``: one class-probability
            vector per item, and one (one-hot or index) label per item or None when the items are unlabelled.
            The default reads ``pred`` and ``label`` (``monai.handlers.from_engine(["pred", "label"])``), labels
            only when every item of the batch has one.
        batch_transform: maps ``engine.state.batch`` to the id of every item (None where unknown). The default
            reads ``id`` of each item.
        calibration_path: a ``calibration.json`` written by evaluation (:mod:`medbundle.calibration`); when it exists
            and belongs to ``model_path``, the CSV gains calibrated probabilities, the binary decision, the conformal
            prediction set, its size and ``refer``. Missing: the plain columns only.
        model_path: the model file the predictions come from (checked against the record's SHA-256).
        uncertainty: a :class:`~medbundle.handlers.PredictiveUncertainty` attached to the same engine: adds the
            ``entropy`` column.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        output_transform: Callable[[Any], tuple[Sequence, Sequence | None]] = _pred_and_label,
        batch_transform: Callable[[Any], Sequence[Any]] = _item_ids,
        calibration_path: str | None = None,
        model_path: str | None = None,
        uncertainty: Any = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.class_names = list(class_names)
        self.output_transform = output_transform
        self.batch_transform = batch_transform
        self.calibration_path = calibration_path
        self.model_path = model_path
        self.uncertainty = uncertainty
        self.ids: list[str] = []
        self.probs: list[np.ndarray] = []
        self.labels: list[int] = []

    def reset(self, engine: Engine | None = None) -> None:
        self.ids, self.probs, self.labels = [], [], []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def collect(self, engine: Engine) -> None:
        probs, labels = self.output_transform(engine.state.output)
        ids = self.batch_transform(engine.state.batch)
        for i, (item_id, prob) in enumerate(zip(ids, probs)):
            self.ids.append(str(len(self.ids) if item_id is None else item_id))
            self.probs.append(np.asarray(prob.detach().float().cpu()).reshape(-1))
            if labels is not None:
                label = labels[i]
                label = np.asarray(label.detach().cpu() if torch.is_tensor(label) else label).reshape(-1)
                self.labels.append(int(label.argmax()) if label.size > 1 else int(label[0]))

    def __call__(self, engine: Engine) -> None:
        if is_rank_zero():
            labels = np.asarray(self.labels) if len(self.labels) == len(self.ids) else None
            path = self.output_dir / "predictions.csv"
            probs = np.stack(self.probs)
            calibration, entropy = self.calibration(engine), self.entropy()
            applied = apply_calibration(probs, calibration) if calibration else None
            if applied is not None:
                logger.info(f"applied {self.calibration_path} (temperature {calibration['temperature']:.3f}, conformal "
                            f"alpha {calibration['conformal']['alpha']})")
            write_predictions_csv(path, self.ids, probs, self.class_names, y_true=labels,
                                  extra_columns=calibration_columns(applied, self.class_names, entropy))
            logger.info(f"wrote {len(self.ids)} predictions to {path}")

    def calibration(self, engine: Engine | None = None) -> dict | None:
        """The calibration record of ``calibration_path`` when it belongs to ``model_path``, these classes and the
        test-time views of ``engine``'s inferer (:class:`medbundle.inferers.TTAInferer`; 1 for any other)."""
        views = None if engine is None else averaged_views(getattr(engine, "inferer", None))
        return load_calibration(self.calibration_path, self.model_path, self.class_names, views=views)

    def entropy(self) -> np.ndarray | None:
        """The entropies of the attached uncertainty handler, one per item, or None."""
        return None if self.uncertainty is None else self.uncertainty.values(len(self.ids))
