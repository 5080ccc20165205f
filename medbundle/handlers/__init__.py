"""Ignite handlers used by the bundles, one handler per module (as in :mod:`monai.handlers`).

- :mod:`~medbundle.handlers.checkpoint_saver`: atomic :class:`CheckpointSaver`, :func:`latest_checkpoint`;
- :mod:`~medbundle.handlers.resume`: :class:`Resume` of an interrupted run;
- :mod:`~medbundle.handlers.epoch_logger`: :class:`EpochLogger`, the CSV (and TensorBoard) epoch log, and
  :class:`EpochLogState`, the log inside the training checkpoints;
- :mod:`~medbundle.handlers.random_state`: :class:`RandomState`, the random-number state inside the checkpoints;
- :mod:`~medbundle.handlers.run_record`: :class:`RunRecord`, the run's ``run.json`` once training starts;
- :mod:`~medbundle.handlers.predictions_writer`: :class:`PredictionsWriter` (``predictions.csv``);
- :mod:`~medbundle.handlers.classification_report`: :class:`ClassificationReport` of a labelled test set;
- :mod:`~medbundle.handlers.calibration_fit`: :class:`CalibrationFit`, ``calibration.json`` from the validation split;
- :mod:`~medbundle.handlers.predictive_uncertainty`: :class:`PredictiveUncertainty`, entropy from TTA / MC dropout;
- :mod:`~medbundle.handlers.batchnorm_recalibration`: :class:`BatchNormRecalibration` ("precise BN");
- :mod:`~medbundle.handlers.phase_schedule`: :class:`PhaseSchedule`, training phases and early stopping;
- :mod:`~medbundle.handlers.explanation_report`: :class:`ExplanationReport` of an evaluator's images;
- :mod:`~medbundle.handlers.shortcut_check`: :class:`ShortcutCheck`, the model scored with the anatomy blanked;
- :mod:`~medbundle.handlers.tensorboard_gradcam`: :class:`TensorBoardGradCAM` overlays during training.
"""

from __future__ import annotations

from medbundle.handlers.batchnorm_recalibration import BatchNormRecalibration
from medbundle.handlers.calibration_fit import CalibrationFit
from medbundle.handlers.checkpoint_saver import (
    CheckpointSaver,
    interval_checkpoints,
    latest_checkpoint,
    wait_for_checkpoints,
)
from medbundle.handlers.classification_report import ClassificationReport
from medbundle.handlers.epoch_logger import EpochLogger, EpochLogState
from medbundle.handlers.explanation_report import ExplanationReport
from medbundle.handlers.phase_schedule import PhaseSchedule
from medbundle.handlers.predictions_writer import PredictionsWriter
from medbundle.handlers.predictive_uncertainty import PredictiveUncertainty
from medbundle.handlers.random_state import RandomState
from medbundle.handlers.resume import Resume
from medbundle.handlers.run_record import RunRecord
from medbundle.handlers.shortcut_check import ShortcutCheck
from medbundle.handlers.tensorboard_gradcam import TensorBoardGradCAM

__all__ = [
    "BatchNormRecalibration",
    "CalibrationFit",
    "CheckpointSaver",
    "ClassificationReport",
    "EpochLogState",
    "EpochLogger",
    "ExplanationReport",
    "PhaseSchedule",
    "PredictionsWriter",
    "PredictiveUncertainty",
    "RandomState",
    "Resume",
    "RunRecord",
    "ShortcutCheck",
    "TensorBoardGradCAM",
    "interval_checkpoints",
    "latest_checkpoint",
    "wait_for_checkpoints",
]
