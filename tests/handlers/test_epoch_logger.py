"""medbundle.handlers.epoch_logger: the per-epoch CSV log (rows, append on resume, the epoch's learning rate)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
from helpers.engines import _RecordingWriter, _model_and_opt, _trainer
from ignite.engine import Engine, Events
from torch import nn

from medbundle.handlers import EpochLogger


def _no_temp_files(folder: Path) -> bool:
    return not [n for n in os.listdir(folder) if n.endswith(".tmp") or n.startswith(".")]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_epoch_logger_rows_and_append(tmp_path):
    log = tmp_path / "logs" / "train_log.csv"
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.25)
    evaluator = Engine(lambda e, b: None)
    evaluator.state.metrics = {"acc": 0.5, "val_auc": 0.75, "cm": torch.eye(2), "one": torch.tensor([0.25])}
    trainer = Engine(lambda e, b: {"loss": torch.tensor(float(b))})
    writer = _RecordingWriter()
    EpochLogger(str(log), opt, evaluator=evaluator, summary_writer=writer).attach(trainer)
    trainer.run([1.0, 3.0], max_epochs=2)
    rows = _read_csv(log)
    assert len(rows) == 2
    assert list(rows[0]) == ["epoch", "train_loss", "lr", "epoch_seconds", "val_acc", "val_auc", "val_one"]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for r in rows:
        assert float(r["train_loss"]) == 2.0
        assert float(r["lr"]) == 0.25
        assert float(r["val_acc"]) == 0.5 and float(r["val_auc"]) == 0.75 and float(r["val_one"]) == 0.25
        assert float(r["epoch_seconds"]) >= 0
    assert ("train_loss", 2.0, 1) in writer.scalars and ("val_acc", 0.5, 2) in writer.scalars
    assert not any(k == "epoch" for k, _, _ in writer.scalars) and writer.flushed == 2
    assert _no_temp_files(log.parent)

    # a resumed run appends to the log of the interrupted one
    opt.param_groups[0]["lr"] = 0.125
    trainer2 = Engine(lambda e, b: {"loss": torch.tensor(float(b))})
    trainer2.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", 2))
    EpochLogger(str(log), opt).attach(trainer2)
    trainer2.run([5.0], max_epochs=3)
    rows2 = _read_csv(log)
    assert len(rows2) == 3
    assert rows2[:2] == rows
    assert rows2[2]["epoch"] == "3" and float(rows2[2]["train_loss"]) == 5.0 and float(rows2[2]["lr"]) == 0.125


def test_epoch_logger_lr_of_the_epoch(tmp_path):
    """A scheduler stepping at the end of an epoch (before the logger) doesn't shift the logged lr."""
    log = tmp_path / "log.csv"
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.4)
    trainer = Engine(lambda e, b: (opt.step(), {"loss": torch.tensor(1.0)})[1])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: sched.step())
    EpochLogger(str(log), opt).attach(trainer)
    trainer.run([0], max_epochs=3)
    assert [float(r["lr"]) for r in _read_csv(log)] == [0.4, 0.2, 0.1]


def test_epoch_logger_list_output(tmp_path):
    """Engines that decollate their output (a list of dicts) are read from the first item."""
    log = tmp_path / "log.csv"
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    trainer = Engine(lambda e, b: [{"loss": torch.tensor(float(b))}, {"loss": torch.tensor(99.0)}])
    EpochLogger(str(log), opt).attach(trainer)
    trainer.run([2.0, 4.0], max_epochs=1)
    rows = _read_csv(log)
    assert len(rows) == 1 and float(rows[0]["train_loss"]) == 3.0
    assert not any(k.startswith("val_") for k in rows[0])


def test_epoch_logger_iteration_loss_without_flush_per_iteration(tmp_path):
    from medbundle.handlers import EpochLogger

    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    writer = _RecordingWriter()
    logger = EpochLogger(str(tmp_path / "log.csv"), opt, summary_writer=writer, iteration_tag="train_loss_iteration")
    logger.attach(trainer)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    trainer.run([0, 1, 2], max_epochs=2)
    iteration_scalars = [c for c in writer.calls if c[0] == "scalar" and c[1] == "train_loss_iteration"]
    assert [(c[2], c[3]) for c in iteration_scalars] == [(loss, i + 1) for i, loss in enumerate(losses)]
    # one flush per epoch, after the epoch's scalars, none per iteration
    n = len(writer.calls)
    assert [i for i, c in enumerate(writer.calls) if c == ("flush",)] == [n // 2 - 1, n - 1]
    tags = {c[1] for c in writer.calls if c[0] == "scalar"}
    assert tags == {"train_loss_iteration", "train_loss", "lr", "epoch_seconds"}
    # without a tag, no iteration scalars (the default)
    writer2 = _RecordingWriter()
    trainer2 = _trainer(model, opt)
    EpochLogger(str(tmp_path / "log2.csv"), opt, summary_writer=writer2).attach(trainer2)
    trainer2.run([0, 1, 2], max_epochs=1)
    assert {c[1] for c in writer2.calls if c[0] == "scalar"} == {"train_loss", "lr", "epoch_seconds"}
