"""The epoch log: one CSV row (and TensorBoard scalars) per epoch: loss, learning rate, time, validation metrics.

Optionally also the loss of every iteration to TensorBoard. :class:`EpochLogState` puts the log into the training
checkpoints, so that a resumed run's log has exactly one row per epoch of the checkpoint it continues from.
"""

from __future__ import annotations

import csv
import logging
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from ignite.base import Serializable
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from medbundle.runtime import is_rank_zero
from medbundle.utils import atomic_write_csv

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["EpochLogger", "EpochLogState", "read_log"]

logger = logging.getLogger("medbundle.handlers")

# the attached EpochLogger of each log file (by resolved path), for EpochLogState
_LOGGERS: weakref.WeakValueDictionary[str, EpochLogger] = weakref.WeakValueDictionary()


class EpochLogger:
    """Write one row per epoch to a CSV file, and the same scalars to TensorBoard.

    Columns: ``epoch``, ``train_loss`` (mean of the epoch's iteration losses), ``lr`` (of the first
    parameter group, as used during the epoch), ``epoch_seconds`` and every metric of ``evaluator`` prefixed ``val_`` when its
    names do not already start with it. The file is rewritten atomically each epoch; rows of an
    interrupted run are kept, so a resumed run appends to its log, and rows of the epoch written and of later
    epochs are replaced (a run resumed from an earlier checkpoint than its log reached repeats those epochs).
    Attach it after the ``ValidationHandler`` so that the validation metrics of the epoch are available. A
    checkpoint that holds an :class:`EpochLogState` of the same file makes the row of the epoch be written
    before the checkpoint is taken, whatever the handlers' order.

    With ``iteration_tag``, the loss of every iteration also goes to TensorBoard under that tag (global
    step = iteration), as MONAI's ``TensorBoardStatsHandler`` writes it, but written and flushed once at the end
    of every epoch with the epoch scalars instead of after each iteration (an event and a flush cost about
    0.7 ms and up to several milliseconds a step on a busy machine; the iteration now only keeps its loss).

    Args:
        log_csv: path of the CSV file.
        optimizer: the optimizer whose learning rate is logged.
        evaluator: the validation evaluator (optional).
        summary_writer: a TensorBoard ``SummaryWriter`` (optional).
        output_transform: maps the trainer's ``engine.state.output`` to the iteration loss (a number or a
            one-element tensor; a one-element tuple, as :func:`monai.handlers.from_engine` returns for a dict,
            is unpacked). The default reads ``loss`` of the output dict, or of its first item when the
            trainer decollates its output into a list of dicts.
        iteration_tag: TensorBoard tag of the iteration loss (needs ``summary_writer``); None: not written.
    """

    def __init__(
        self,
        log_csv: str,
        optimizer: torch.optim.Optimizer,
        evaluator: Engine | None = None,
        summary_writer: SummaryWriter | None = None,
        output_transform: Callable[[Any], Any] = from_engine(["loss"], first=True),
        iteration_tag: str | None = None,
    ) -> None:
        self.log_csv = Path(log_csv)
        self.optimizer = optimizer
        self.evaluator = evaluator
        self.writer = summary_writer
        self.output_transform = output_transform
        self.iteration_tag = iteration_tag
        self._losses: list[float] = []
        self._first_iteration = 0
        self._start = 0.0
        self._lr = float("nan")
        self._engine: Engine | None = None
        self._epoch_open = -1  # the epoch started in this run whose row is not written yet

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        _LOGGERS[str(self.log_csv.resolve())] = self
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _epoch_started(self, engine: Engine) -> None:
        self._losses, self._start = [], time.perf_counter()
        self._first_iteration = engine.state.iteration + 1
        self._lr = self.optimizer.param_groups[0]["lr"]
        self._epoch_open = engine.state.epoch

    def _iteration_completed(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        if isinstance(loss, tuple) and len(loss) == 1:
            loss = loss[0]
        self._losses.append(float(loss.detach()) if torch.is_tensor(loss) else float(loss))

    def write_completed_epoch(self) -> None:
        """Write the row of the epoch now completing, if any (called from ``EPOCH_COMPLETED`` handlers)."""
        engine = self._engine
        if engine is not None and engine.last_event_name == Events.EPOCH_COMPLETED:
            self(engine)

    def __call__(self, engine: Engine) -> None:
        if self._epoch_open != engine.state.epoch:
            return  # written already (by write_completed_epoch), or no epoch of this run to log
        self._epoch_open = -1
        row: dict[str, Any] = {
            "epoch": engine.state.epoch,
            "train_loss": float(np.mean(self._losses)) if self._losses else float("nan"),
            "lr": self._lr,
            "epoch_seconds": round(time.perf_counter() - self._start, 3),
        }
        if self.evaluator is not None:
            for name, value in self.evaluator.state.metrics.items():
                if np.isscalar(value) or (torch.is_tensor(value) and value.numel() == 1):
                    row[name if name.startswith("val_") else f"val_{name}"] = float(value)
        rows = []
        if self.log_csv.is_file():
            with open(self.log_csv, newline="") as f:
                rows = [r for r in csv.DictReader(f) if _epoch(r) < engine.state.epoch]
        rows.append(row)
        atomic_write_csv(self.log_csv, rows)
        if self.writer is not None:
            if self.iteration_tag is not None:
                for i, loss in enumerate(self._losses):
                    self.writer.add_scalar(self.iteration_tag, loss, self._first_iteration + i)
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, engine.state.epoch)
            self.writer.flush()


def _epoch(row: dict) -> float:
    try:
        return float(row.get("epoch") or "nan")
    except ValueError:
        return float("nan")


def read_log(log_csv: str | Path) -> list[dict]:
    """The rows of an epoch log (strings, as in the file); none when the file does not exist."""
    path = Path(log_csv)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class EpochLogState(Serializable):
    """The epoch log as part of a training checkpoint: saved with it, written back when a run resumes from it.

    Put it in the checkpoint's ``save_dict`` (and the ``load_dict`` of :class:`~medbundle.handlers.Resume`).
    :meth:`state_dict`, called when the checkpoint is taken at the end of an epoch, first has the
    :class:`EpochLogger` of the same file write that epoch's row, then returns every row of the file: a
    checkpoint of epoch ``k`` holds the rows of epochs ``1..k``. :meth:`load_state_dict` rewrites the file with
    exactly those rows (atomically, by rank 0), so that after a kill at any point the resumed run's log has one
    row per completed epoch of the checkpoint it continues from: a row written after that checkpoint is dropped,
    and a row missing from the file is restored.

    Args:
        log_csv: path of the epoch log (the ``log_csv`` of the :class:`EpochLogger`).
    """

    def __init__(self, log_csv: str) -> None:
        self.log_csv = Path(log_csv)

    def state_dict(self) -> dict:
        epoch_logger = _LOGGERS.get(str(self.log_csv.resolve()))
        if epoch_logger is not None:
            epoch_logger.write_completed_epoch()
        return {"rows": read_log(self.log_csv)}

    def load_state_dict(self, state_dict: dict) -> None:
        rows = list(state_dict.get("rows", []))
        if not is_rank_zero():
            return
        if rows:
            atomic_write_csv(self.log_csv, rows)
        else:
            self.log_csv.unlink(missing_ok=True)
        logger.info(f"resume: {self.log_csv} restored from the checkpoint ({len(rows)} epoch row(s))")
