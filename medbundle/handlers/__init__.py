"""Ignite handlers used by the bundles, one handler per module (as in :mod:`monai.handlers`).

- :mod:`~medbundle.handlers.checkpoint_saver`: atomic :class:`CheckpointSaver`, :func:`latest_checkpoint`;
- :mod:`~medbundle.handlers.resume`: :class:`Resume` of an interrupted run;
- :mod:`~medbundle.handlers.epoch_logger`: :class:`EpochLogger`, the CSV (and TensorBoard) epoch log;
- :mod:`~medbundle.handlers.predictions_writer`: :class:`PredictionsWriter` (``predictions.csv``);
- :mod:`~medbundle.handlers.classification_report`: :class:`ClassificationReport` of a labelled test set;
- :mod:`~medbundle.handlers.batchnorm_recalibration`: :class:`BatchNormRecalibration` ("precise BN");
- :mod:`~medbundle.handlers.phase_schedule`: :class:`PhaseSchedule`, training phases and early stopping;
- :mod:`~medbundle.handlers.explanation_report`: :class:`ExplanationReport` of an evaluator's images;
- :mod:`~medbundle.handlers.tensorboard_gradcam`: :class:`TensorBoardGradCAM` overlays during training.
"""

from __future__ import annotations

from medbundle.handlers.batchnorm_recalibration import BatchNormRecalibration
from medbundle.handlers.checkpoint_saver import CheckpointSaver, latest_checkpoint, wait_for_checkpoints
from medbundle.handlers.classification_report import ClassificationReport
from medbundle.handlers.epoch_logger import EpochLogger
from medbundle.handlers.explanation_report import ExplanationReport
from medbundle.handlers.phase_schedule import PhaseSchedule
from medbundle.handlers.predictions_writer import PredictionsWriter
from medbundle.handlers.resume import Resume
from medbundle.handlers.tensorboard_gradcam import TensorBoardGradCAM

__all__ = [
    "BatchNormRecalibration",
    "CheckpointSaver",
    "ClassificationReport",
    "EpochLogger",
    "ExplanationReport",
    "PhaseSchedule",
    "PredictionsWriter",
    "Resume",
    "TensorBoardGradCAM",
    "latest_checkpoint",
    "wait_for_checkpoints",
]
