"""medbundle.handlers.resume: resuming a run from its last checkpoint (after the background writes), or starting
afresh."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from helpers.engines import _model_and_opt, _slow_atomic_write, _trainer
from ignite.engine import Events

import medbundle.handlers.checkpoint_saver as mb_checkpoint_saver
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
