"""The epoch log: one CSV row (and TensorBoard scalars) per epoch: loss, learning rate, time, validation metrics.

Optionally also the loss of every iteration to TensorBoard.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from medbundle.utils import atomic_write_csv

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["EpochLogger"]


class EpochLogger:
    """Write one row per epoch to a CSV file, and the same scalars to TensorBoard.

    Columns: ``epoch``, ``train_loss`` (mean of the epoch's iteration losses), ``lr`` (of the first
    parameter group, as used during the epoch), ``epoch_seconds`` and every metric of ``evaluator`` prefixed ``val_`` when its
    names do not already start with it. The file is rewritten atomically each epoch; rows of an
    interrupted run are kept, so a resumed run appends to its log. Attach it after the
    ``ValidationHandler`` so that the validation metrics of the epoch are available.

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

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _epoch_started(self, engine: Engine) -> None:
        self._losses, self._start = [], time.perf_counter()
        self._first_iteration = engine.state.iteration + 1
        self._lr = self.optimizer.param_groups[0]["lr"]

    def _iteration_completed(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        if isinstance(loss, tuple) and len(loss) == 1:
            loss = loss[0]
        self._losses.append(float(loss.detach()) if torch.is_tensor(loss) else float(loss))

    def __call__(self, engine: Engine) -> None:
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
                rows = list(csv.DictReader(f))
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
