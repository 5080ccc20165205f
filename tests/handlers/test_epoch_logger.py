"""medbundle.handlers.epoch_logger: the per-epoch CSV log (rows, append on resume, the epoch's learning rate)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch
from helpers.engines import _RecordingWriter, _model_and_opt, _trainer
from ignite.engine import Engine, Events
from torch import nn

from medbundle.handlers import EpochLogger, latest_checkpoint


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


# ---------------------------------------------------------------------------------------------------------------
# the epoch log in the checkpoints: one row per completed epoch of the checkpoint a run resumes from
# ---------------------------------------------------------------------------------------------------------------


def _logged_run(folder: Path, max_epochs: int, kill: str | None = None, kill_epoch: int = 0) -> None:
    """Train with a saver (attached BEFORE the logger, as in the bundles), the epoch log in the checkpoint, resume.

    ``kill``: where the process dies in epoch ``kill_epoch``: ``"mid_epoch"`` (at its first iteration),
    ``"after_checkpoint"`` (checkpoint on disk, before the logger's handler) or ``"after_row"`` (at the end of
    the epoch's handlers).
    """
    from medbundle.handlers import CheckpointSaver, EpochLogState, Resume

    class Killed(BaseException):
        pass

    model, opt = _model_and_opt(seed=0)
    trainer = _trainer(model, opt)
    ckpt, log = folder / "models", folder / "train_log.csv"
    objects = {"model": model, "optimizer": opt, "epoch_log": EpochLogState(str(log))}
    Resume(str(ckpt), objects, engine_key="trainer", log_csv=str(log)).attach(trainer)
    saver = CheckpointSaver(str(ckpt), objects, engine_key="trainer", save_interval=1, n_saved=2, background=False)
    saver.attach(trainer)
    if kill == "after_checkpoint":
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=kill_epoch), lambda e: (_ for _ in ()).throw(Killed()))
    EpochLogger(str(log), opt).attach(trainer)
    if kill == "after_row":
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=kill_epoch), lambda e: (_ for _ in ()).throw(Killed()))
    if kill == "mid_epoch":
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2 * kill_epoch - 1),
                                  lambda e: (_ for _ in ()).throw(Killed()))
    try:
        trainer.run([0, 1], max_epochs=max_epochs)
    except Killed:
        pass


def _epochs(log: Path) -> list[int]:
    return [int(r["epoch"]) for r in _read_csv(log)]


@pytest.mark.parametrize("kill", ["mid_epoch", "after_checkpoint", "after_row", "checkpoint_lost"])
def test_epoch_log_has_one_row_per_epoch_after_a_kill_anywhere(tmp_path, kill):
    log = tmp_path / "train_log.csv"
    _logged_run(tmp_path, max_epochs=5, kill="after_row" if kill == "checkpoint_lost" else kill, kill_epoch=3)
    if kill == "checkpoint_lost":  # the row of epoch 3 was written, its checkpoint never reached the disk
        (tmp_path / "models" / "checkpoint_epoch=3.pt").unlink()
    expected_resume = 2 if kill in ("mid_epoch", "checkpoint_lost") else 3
    assert latest_checkpoint(tmp_path / "models") == tmp_path / "models" / f"checkpoint_epoch={expected_resume}.pt"
    # the checkpoint of epoch k holds the rows of epochs 1..k: the row was written before the checkpoint was taken
    state = torch.load(tmp_path / "models" / f"checkpoint_epoch={expected_resume}.pt", weights_only=True)
    assert [int(r["epoch"]) for r in state["epoch_log"]["rows"]] == list(range(1, expected_resume + 1))
    # resumed (a new process): the log is the checkpoint's, then one row per further epoch
    _logged_run(tmp_path, max_epochs=5)
    assert _epochs(log) == [1, 2, 3, 4, 5]
    assert _no_temp_files(tmp_path)


def test_epoch_log_state_restores_a_lost_log_at_resume(tmp_path):
    """The checkpoint holds the log: a log file lost or cut after the kill comes back when the run resumes."""
    from medbundle.handlers import EpochLogState

    log = tmp_path / "train_log.csv"
    _logged_run(tmp_path, max_epochs=5, kill="after_checkpoint", kill_epoch=3)
    assert _epochs(log) == [1, 2, 3]  # the row is written when the checkpoint is taken, before the logger's turn
    full = _read_csv(log)
    log.write_text("epoch,train_loss\n1,9\n")
    state = torch.load(tmp_path / "models" / "checkpoint_epoch=3.pt", weights_only=True)["epoch_log"]
    EpochLogState(str(log)).load_state_dict(state)
    assert _read_csv(log) == full
    log.unlink()
    _logged_run(tmp_path, max_epochs=5)
    assert _epochs(log) == [1, 2, 3, 4, 5] and _read_csv(log)[:3] == full


def test_epoch_logger_replaces_rows_of_epochs_run_again(tmp_path):
    """Without the state in the checkpoint: a run repeating epochs replaces their rows instead of adding some."""
    log = tmp_path / "log.csv"
    log.write_text("epoch,train_loss\n1,0.5\n2,0.4\n3,0.3\n")
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    trainer = Engine(lambda e, b: {"loss": torch.tensor(1.0)})
    trainer.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", 1))
    EpochLogger(str(log), opt).attach(trainer)
    trainer.run([0], max_epochs=3)
    rows = _read_csv(log)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and [r["train_loss"] for r in rows] == ["0.5", "1.0", "1.0"]
