"""medbundle.handlers.resume: resuming a run from its last checkpoint (after the background writes), or starting
afresh."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from helpers.engines import _model_and_opt, _slow_atomic_write, _trainer
from ignite.engine import Events

import medbundle.handlers.checkpoint_saver as mb_checkpoint_saver
from medbundle.data.errors import DataError
from medbundle.handlers import CheckpointSaver, Resume, latest_checkpoint


def test_resume_from_scratch(tmp_path, caplog):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    resume = Resume(str(tmp_path / "ckpt"), {"model": model, "optimizer": opt}, enabled=True)
    resume.attach(trainer)
    w0 = model.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="medbundle.handlers"):
        resume(trainer)
    assert "from scratch" in caplog.text
    assert trainer.state.epoch == 0 and resume.resumed_from is None
    assert torch.equal(model.weight.detach(), w0)
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run([0], max_epochs=2)
    assert epochs == [1, 2]


def _interrupted_run(ckpt: Path, epochs: int = 2):
    """Train a model for ``epochs`` epochs, saving full checkpoints (with the trainer) every epoch."""
    model, opt = _model_and_opt(seed=0)
    trainer = _trainer(model, opt)
    CheckpointSaver(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer", save_interval=1,
                    n_saved=2).attach(trainer)
    trainer.run([0, 1], max_epochs=epochs)
    return model, opt


def test_resume_restores_model_optimizer_and_epoch(tmp_path):
    ckpt = tmp_path / "ckpt"
    model1, opt1 = _interrupted_run(ckpt)
    model2, opt2 = _model_and_opt(seed=7)
    assert not torch.equal(model2.weight, model1.weight)
    trainer = _trainer(model2, opt2)
    resume = Resume(str(ckpt), {"model": model2, "optimizer": opt2}, engine_key="trainer", enabled=True)
    resume.attach(trainer)
    seen = {}

    @trainer.on(Events.STARTED)
    def _record(engine):  # registered after Resume: runs right after the checkpoint is loaded
        seen["epoch"] = engine.state.epoch
        seen["iteration"] = engine.state.iteration
        seen["weight"] = model2.weight.detach().clone()
        seen["exp_avg"] = opt2.state[model2.weight]["exp_avg"].clone()
        seen["step"] = float(opt2.state[model2.weight]["step"])

    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run([0, 1], max_epochs=3)
    assert resume.resumed_from == ckpt / "checkpoint_epoch=2.pt"
    assert seen["epoch"] == 2 and seen["iteration"] == 4
    torch.testing.assert_close(seen["weight"], model1.weight.detach())
    torch.testing.assert_close(seen["exp_avg"], opt1.state[model1.weight]["exp_avg"])
    assert seen["step"] == 4.0
    assert epochs == [3]  # only the remaining epoch runs
    assert trainer.state.epoch == 3
    assert latest_checkpoint(ckpt) == ckpt / "checkpoint_epoch=2.pt"  # this trainer has no saver


def test_resume_disabled_ignores_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    _interrupted_run(ckpt)
    model2, opt2 = _model_and_opt(seed=7)
    w0 = model2.weight.detach().clone()
    trainer = _trainer(model2, opt2)
    Resume(str(ckpt), {"model": model2, "optimizer": opt2}, enabled=False).attach(trainer)
    seen = {}
    trainer.add_event_handler(Events.STARTED, lambda e: seen.update(w=model2.weight.detach().clone()))
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run([0], max_epochs=2)
    assert torch.equal(seen["w"], w0) and epochs == [1, 2]


def test_resume_disabled_clears_an_earlier_run(tmp_path):
    """A fresh run in a used folder removes the earlier run's interval checkpoints and log (not the best model)."""
    from ignite.engine import Engine

    from medbundle.handlers import Resume, latest_checkpoint

    ckpt_dir = tmp_path / "models"
    ckpt_dir.mkdir()
    for name in ("checkpoint_epoch=5.pt", "checkpoint_epoch=6.pt", "model.pt"):
        (ckpt_dir / name).write_bytes(b"old")
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,train_loss\n1,0.5\n")
    engine = Engine(lambda e, b: None)
    Resume(str(ckpt_dir), {}, enabled=False, log_csv=str(log)).attach(engine)
    engine.run([0], max_epochs=1)
    assert latest_checkpoint(ckpt_dir) is None and not log.exists()
    assert (ckpt_dir / "model.pt").read_bytes() == b"old"


def test_resume_waits_for_and_cleans_background_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(mb_checkpoint_saver, "atomic_write", _slow_atomic_write)
    ckpt = tmp_path / "ckpt"
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer", save_interval=1,
                    n_saved=2).attach(trainer)
    trainer.run([0, 1], max_epochs=2)
    (ckpt / ".checkpoint_epoch=3.pt.abc123.tmp").write_bytes(b"left by a killed write")
    model2, opt2 = _model_and_opt(seed=5)
    trainer2 = _trainer(model2, opt2)
    resume = Resume(str(ckpt), {"model": model2, "optimizer": opt2}, engine_key="trainer", enabled=True)
    resume.attach(trainer2)
    trainer2.run([0, 1], max_epochs=3)
    assert resume.resumed_from == ckpt / "checkpoint_epoch=2.pt"
    assert not list(ckpt.glob("*.tmp"))


# ---------------------------------------------------------------------------------------------------------------
# damaged checkpoints
# ---------------------------------------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_falls_back_from_a_truncated_checkpoint(tmp_path, caplog):
    ckpt = tmp_path / "ckpt"
    _interrupted_run(ckpt, epochs=3)  # checkpoints of epochs 2 and 3
    _truncate(ckpt / "checkpoint_epoch=3.pt")
    model, opt = _model_and_opt(seed=7)
    trainer = _trainer(model, opt)
    resume = Resume(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer")
    resume.attach(trainer)
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    with caplog.at_level(logging.WARNING, logger="medbundle.handlers"):
        trainer.run([0, 1], max_epochs=4)
    assert resume.resumed_from == ckpt / "checkpoint_epoch=2.pt" and epochs == [3, 4]
    assert f"{ckpt / 'checkpoint_epoch=3.pt'} cannot be read" in caplog.text
    assert "falling back to" in caplog.text and "checkpoint_epoch=2.pt" in caplog.text


@pytest.mark.parametrize("damage", ["truncated", "empty", "not a checkpoint"])
def test_resume_without_an_intact_checkpoint_is_a_one_line_error(tmp_path, damage):
    ckpt = tmp_path / "ckpt"
    _interrupted_run(ckpt, epochs=2)
    for path in ckpt.glob("checkpoint_epoch=*.pt"):
        if damage == "truncated":
            _truncate(path)
        else:
            path.write_bytes(b"" if damage == "empty" else b"hello, not a zip file")
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    Resume(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer").attach(trainer)
    with pytest.raises(DataError) as info:
        trainer.run([0], max_epochs=3)
    message = str(info.value)
    assert "\n" not in message and str(ckpt) in message and "--resume false" in message
    assert "checkpoint_epoch=1.pt" in message and "checkpoint_epoch=2.pt" in message


def test_resume_beyond_the_epochs_asked_for_is_a_one_line_error(tmp_path):
    ckpt = tmp_path / "ckpt"
    _interrupted_run(ckpt, epochs=3)
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    Resume(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer").attach(trainer)
    with pytest.raises(DataError, match=r"epoch 3, beyond the 2 epochs asked for; pass --epochs 4"):
        trainer.run([0], max_epochs=2)


# ---------------------------------------------------------------------------------------------------------------
# the learning-rate schedule of a resumed run
# ---------------------------------------------------------------------------------------------------------------


def _scheduled_run(ckpt: Path, t_max: int, max_epochs: int, stop_after: int | None = None,
                   resume: bool = False) -> list[float]:
    """A cosine-scheduled run (T_max=t_max) saving every epoch; the learning rate of each epoch it trains."""
    model, opt = _model_and_opt(seed=0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)
    trainer = _trainer(model, opt)
    objects = {"model": model, "optimizer": opt, "lr_scheduler": sched}
    if resume:
        Resume(str(ckpt), objects, engine_key="trainer").attach(trainer)
    lrs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: lrs.append(opt.param_groups[0]["lr"]))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: sched.step())
    CheckpointSaver(str(ckpt), objects, engine_key="trainer", save_interval=1, n_saved=2,
                    background=False).attach(trainer)
    if stop_after is not None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    trainer.run([0, 1], max_epochs=max_epochs)
    return lrs


def _cosine(step: int, t_max: int, base: float = 0.01) -> float:
    return base * (1 + math.cos(math.pi * step / t_max)) / 2


def test_resume_with_more_epochs_rebuilds_the_schedule(tmp_path, caplog):
    """A finished 3-epoch run resumed with 6 epochs follows the 6-epoch cosine from step 3 (not lr 0)."""
    ckpt = tmp_path / "ckpt"
    first = _scheduled_run(ckpt, t_max=3, max_epochs=3)
    assert first == pytest.approx([_cosine(s, 3) for s in range(3)])
    with caplog.at_level(logging.INFO, logger="medbundle.handlers"):
        more = _scheduled_run(ckpt, t_max=6, max_epochs=6, resume=True)
    assert more == pytest.approx([_cosine(s, 6) for s in (3, 4, 5)])
    assert more[0] > 0
    assert "T_max 3 -> 6" in caplog.text
    saved = torch.load(ckpt / "checkpoint_epoch=6.pt", weights_only=True)["lr_scheduler"]
    assert saved["T_max"] == 6 and saved["last_epoch"] == 6


def test_resume_with_the_same_epochs_continues_the_schedule_exactly(tmp_path):
    whole = _scheduled_run(tmp_path / "whole", t_max=5, max_epochs=5)
    cut = _scheduled_run(tmp_path / "cut", t_max=5, max_epochs=5, stop_after=2)
    cut += _scheduled_run(tmp_path / "cut", t_max=5, max_epochs=5, resume=True)
    assert cut == whole  # exactly: nothing recomputed


def test_resume_checkpoint_missing_objects(tmp_path, caplog):
    """A checkpoint of an earlier version (no epoch log, no random state) resumes with a warning; one without
    the model is a one-line error."""
    from medbundle.handlers import EpochLogState, RandomState

    ckpt = tmp_path / "ckpt"
    _interrupted_run(ckpt, epochs=2)
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    objects = {"model": model, "optimizer": opt, "rng": RandomState(),
               "epoch_log": EpochLogState(str(tmp_path / "l.csv"))}
    resume = Resume(str(ckpt), objects, engine_key="trainer")
    resume.attach(trainer)
    with caplog.at_level(logging.WARNING, logger="medbundle.handlers"):
        trainer.run([0], max_epochs=3)
    assert resume.resumed_from == ckpt / "checkpoint_epoch=2.pt"
    assert "holds no 'rng', 'epoch_log'" in caplog.text or "holds no 'epoch_log', 'rng'" in caplog.text

    torch.save({"model": model.state_dict()}, ckpt / "checkpoint_epoch=9.pt")
    trainer2 = _trainer(model, opt)
    Resume(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer").attach(trainer2)
    with pytest.raises(DataError, match=r"holds no 'optimizer', 'trainer'.*--resume false") as info:
        trainer2.run([0], max_epochs=12)
    assert "\n" not in str(info.value)
