"""medbundle.handlers.checkpoint_saver: interval and key-metric checkpoints, atomic saves, latest_checkpoint,
background writes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers.engines import _ORIGINAL_ATOMIC_WRITE, _atomic_write_after, _model_and_opt, _slow_atomic_write, _trainer
from ignite.engine import Engine, Events
from torch import nn

import medbundle.handlers.checkpoint_saver as mb_checkpoint_saver
from medbundle.handlers import CheckpointSaver, latest_checkpoint
from medbundle.handlers.checkpoint_saver import wait_for_checkpoints


def _evaluator(score: list) -> Engine:
    """An engine whose ``acc`` metric is ``score[0]`` at the end of every epoch."""
    ev = Engine(lambda e, b: None)
    ev.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.metrics.update(acc=score[0]))
    return ev


def test_checkpoint_saver_interval_files_and_latest(tmp_path):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=2,
                    epoch_level=True).attach(trainer)
    trainer.run([0, 1], max_epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=3.pt"
    mode = (tmp_path / "checkpoint_epoch=3.pt").stat().st_mode
    assert mode & 0o044 == 0o044  # readable by group and others, unlike ignite's atomic DiskSaver
    saved = torch.load(tmp_path / "checkpoint_epoch=3.pt", weights_only=False)
    assert set(saved) == {"model", "optimizer"}
    torch.testing.assert_close(saved["model"]["weight"], model.weight.detach())


def test_latest_checkpoint_numeric_order(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    for name in ("checkpoint_epoch=9.pt", "checkpoint_epoch=10.pt", "model.pt", "checkpoint_epoch=2.pt"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=10.pt"
    (tmp_path / "run_epoch=99.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path, prefix="run") == tmp_path / "run_epoch=99.pt"


def _failing_save(obj, f, *args, **kwargs):
    f.write(b"half a checkpoint")
    raise OSError("disk full")


def test_checkpoint_saver_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=2).attach(trainer)
    monkeypatch.setattr(mb_checkpoint_saver.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.run([0], max_epochs=1)
    assert not (tmp_path / "checkpoint_epoch=1.pt").exists()
    assert os.listdir(tmp_path) == []


def test_checkpoint_saver_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    model, _ = _model_and_opt()
    score = [0.5]
    saver = CheckpointSaver(str(tmp_path), {"model": model}, save_key_metric=True, key_metric_name="acc",
                            key_metric_filename="model.pt")
    ev = _evaluator(score)
    saver.attach(ev)
    ev.run([0], max_epochs=1)
    before = (tmp_path / "model.pt").read_bytes()
    with torch.no_grad():
        model.weight.add_(1.0)
    score[0] = 0.9
    monkeypatch.setattr(mb_checkpoint_saver.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        ev.run([0], max_epochs=1)
    assert (tmp_path / "model.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


def _key_metric_run(folder: Path, model: nn.Module, score: float, state: dict | None = None) -> CheckpointSaver:
    saver = CheckpointSaver(str(folder), {"model": model}, save_key_metric=True, key_metric_name="acc",
                            key_metric_filename="model.pt", key_metric_greater_or_equal=True)
    if state is not None:
        saver.load_state_dict(state)
    ev = _evaluator([score])
    saver.attach(ev)
    ev.run([0], max_epochs=1)
    return saver


def test_checkpoint_saver_best_record_round_trip(tmp_path):
    model, _ = _model_and_opt()
    first = _key_metric_run(tmp_path, model, 0.8)
    state = first.state_dict()
    assert state  # the record of the best checkpoint
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(best["weight"], model.weight.detach())
    # the record survives a round trip through a checkpoint file (as in the full training state)
    torch.save({"best_model": state}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=False)["best_model"]
    (tmp_path / "state.pt").unlink()

    worse, _ = _model_and_opt(seed=1)
    _key_metric_run(tmp_path, worse, 0.5, state=state)
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(kept["weight"], model.weight.detach())  # not overwritten by a worse score

    better, _ = _model_and_opt(seed=2)
    saver = _key_metric_run(tmp_path, better, 0.9, state=state)
    new = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(new["weight"], better.weight.detach())
    assert os.listdir(tmp_path) == ["model.pt"]
    assert saver.state_dict()["_saved"][0][0] == pytest.approx(0.9)


def test_checkpoint_saver_without_record_overwrites(tmp_path):
    """Control for the round trip: a saver that does not load the record saves the worse model."""
    model, _ = _model_and_opt()
    _key_metric_run(tmp_path, model, 0.8)
    worse, _ = _model_and_opt(seed=1)
    _key_metric_run(tmp_path, worse, 0.5)
    torch.testing.assert_close(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], worse.weight.detach())


def test_checkpoint_saver_state_dict_without_key_metric(tmp_path):
    model, _ = _model_and_opt()
    saver = CheckpointSaver(str(tmp_path), {"model": model}, save_interval=1)
    assert saver.state_dict() == {}
    saver.load_state_dict({})  # no error, nothing to restore


def test_checkpoint_saver_engine_key(tmp_path):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, engine_key="trainer",
                    save_interval=1, n_saved=1).attach(trainer)
    trainer.run([0, 1, 2], max_epochs=2)
    assert os.listdir(tmp_path) == ["checkpoint_epoch=2.pt"]
    saved = torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=False)
    assert set(saved) == {"model", "optimizer", "trainer"}
    assert saved["trainer"]["iteration"] == 6 and saved["trainer"]["epoch_length"] == 3  # ignite: epoch 2


# ---------------------------------------------------------------------------------------------------------------
# checkpoints written in the background
# ---------------------------------------------------------------------------------------------------------------


def _checkpoints(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_background_checkpoints_complete_consistent_and_n_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(mb_checkpoint_saver, "atomic_write", _slow_atomic_write)
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    saver = CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, engine_key="trainer", save_interval=1,
                            n_saved=2, epoch_level=True)
    assert saver.background  # the default
    saver.attach(trainer)
    at_save: dict[int, torch.Tensor] = {}
    seen_on_disk: list[list[str]] = []
    # registered after the saver: the weights as saved, before training changes them again
    trainer.add_event_handler(Events.EPOCH_COMPLETED,
                              lambda e: at_save.update({e.state.epoch: model.weight.detach().clone()}))
    # at the end of an epoch's first iteration, the previous epoch's checkpoint is on disk (a kill later finds it)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen_on_disk.append(_checkpoints(tmp_path))
                              if e.state.iteration % 3 == 1 and e.state.epoch > 1 else None)
    trainer.run([0, 1, 2], max_epochs=4)
    # the last checkpoint (saved at the very end of the run) is on disk when run() returns; n_saved holds
    assert _checkpoints(tmp_path) == ["checkpoint_epoch=3.pt", "checkpoint_epoch=4.pt"]
    assert seen_on_disk == [["checkpoint_epoch=1.pt"], ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"],
                            ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"]]
    for epoch in (3, 4):
        state = torch.load(tmp_path / f"checkpoint_epoch={epoch}.pt", weights_only=True)  # complete files
        assert set(state) == {"model", "optimizer", "trainer"}
        assert state["trainer"]["iteration"] == 3 * epoch
        # a snapshot taken at the save, not the tensors as training changed them while the file was written
        torch.testing.assert_close(state["model"]["weight"], at_save[epoch])
    assert not torch.equal(at_save[3], at_save[4])
    assert (tmp_path / "checkpoint_epoch=4.pt").stat().st_mode & 0o044 == 0o044


def test_background_write_overlaps_training(tmp_path, monkeypatch):
    """The save returns before the file is written: training goes on while the writer thread works."""
    next_iteration = threading.Event()
    overlapped: list[bool] = []

    # a synchronous write would wait for nothing here
    waiting_atomic_write = _atomic_write_after(lambda path: overlapped.append(next_iteration.wait(timeout=10)))
    monkeypatch.setattr(mb_checkpoint_saver, "atomic_write", waiting_atomic_write)
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model}, save_interval=1, n_saved=1).attach(trainer)
    trainer.add_event_handler(Events.ITERATION_STARTED,
                              lambda e: next_iteration.set() if e.state.iteration == 3 else None)
    t0 = time.perf_counter()
    trainer.run([0, 1], max_epochs=2)  # saves after iterations 2 and 4
    assert time.perf_counter() - t0 < 10
    assert overlapped[0] is True  # the first write went on while iteration 3 started
    assert _checkpoints(tmp_path) == ["model_epoch=2.pt"]


def test_background_snapshot_reuses_its_buffers_and_keeps_state_dict_metadata(tmp_path):
    """The snapshot copies into the buffers of the previous save (no new allocation once shapes are known); a
    module state dict keeps its ``_metadata`` (the version of a batch-norm layer's state), as a direct save does."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    trainer = _trainer(model, opt)
    saver = CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=3)
    saver.attach(trainer)
    handler = saver._interval_checkpoint.save_handler
    buffers: list[list[int]] = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: buffers.append([id(b) for b in handler._buffers]))
    trainer.run([0, 1], max_epochs=3)
    # epoch 1: the Adam state appears at the first step, so every buffer exists from the first save on
    assert len(buffers[0]) == len(model.state_dict()) + 2 * len(list(model.parameters())) + len(opt.state) \
        and buffers[0] == buffers[1] == buffers[2]
    state = torch.load(tmp_path / "checkpoint_epoch=3.pt", weights_only=True)
    assert state["model"]._metadata == model.state_dict()._metadata
    for k, v in model.state_dict().items():
        torch.testing.assert_close(state["model"][k], v)


def test_background_save_removes_the_oldest_only_after_the_new_file_is_on_disk(tmp_path, monkeypatch):
    present_while_writing: list[list[str]] = []

    recording = _atomic_write_after(lambda path: present_while_writing.append(_checkpoints(tmp_path)))
    monkeypatch.setattr(mb_checkpoint_saver, "atomic_write", recording)
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model}, save_interval=1, n_saved=1).attach(trainer)
    trainer.run([0], max_epochs=3)
    # ignite asks for the removal of epoch 1 before saving epoch 2: the file stays until epoch 2 is written
    assert present_while_writing == [[], ["model_epoch=1.pt"], ["model_epoch=2.pt"]]
    assert _checkpoints(tmp_path) == ["model_epoch=3.pt"]


def test_background_best_model_and_synchronous_option(tmp_path, monkeypatch):
    monkeypatch.setattr(mb_checkpoint_saver, "atomic_write", _slow_atomic_write)
    model, _ = _model_and_opt()
    for background, folder in ((True, tmp_path / "bg"), (False, tmp_path / "sync")):
        saver = CheckpointSaver(str(folder), {"model": model}, save_key_metric=True, key_metric_name="acc",
                                key_metric_filename="model.pt", background=background)
        score = [0.5]
        ev = Engine(lambda e, b: None)
        ev.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.metrics.update(acc=score[0]))
        saver.attach(ev)
        for s in (0.5, 0.9):
            score[0] = s
            with torch.no_grad():
                model.weight.add_(1.0)
            ev.run([0], max_epochs=1)
            assert _checkpoints(folder) == ["model.pt"]  # on disk when run() returns, no temporary file left
            torch.testing.assert_close(torch.load(folder / "model.pt", weights_only=True)["weight"],
                                       model.weight.detach())


def _failing_atomic_write(path, mode="w", **kwargs):
    @contextlib.contextmanager
    def cm():
        with _ORIGINAL_ATOMIC_WRITE(path, mode, **kwargs) as f:
            f.write(b"half a checkpoint")
            raise OSError("disk full")
            yield f  # noqa: unreachable

    return cm()


@pytest.mark.parametrize("epochs", [1, 3])
def test_background_write_error_is_raised(tmp_path, monkeypatch, epochs):
    """A failed write in the writer thread is raised in the training thread: by run(), never silently lost."""
    monkeypatch.setattr(mb_checkpoint_saver, "atomic_write", _failing_atomic_write)
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=2).attach(trainer)
    iterations = []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: iterations.append(e.state.iteration))
    with pytest.raises(OSError, match="disk full") as info:
        trainer.run([0, 1], max_epochs=epochs)
    assert any("in the background" in note for note in getattr(info.value, "__notes__", []))
    # epochs=1: raised when the run completes; epochs=3: at the end of the next iteration after the failed save
    assert iterations == ([1, 2] if epochs == 1 else [1, 2, 3])
    assert os.listdir(tmp_path) == []  # neither a truncated checkpoint nor a temporary file
    wait_for_checkpoints()  # the error was raised once, not kept


# ---------------------------------------------------------------------------------------------------------------
# n_saved across runs in the same folder (kill and resume)
# ---------------------------------------------------------------------------------------------------------------


def test_n_saved_holds_across_kill_resume_cycles(tmp_path):
    """Five kill/resume cycles leave exactly n_saved interval checkpoints (and the best model), no temporary file."""
    from medbundle.handlers import Resume

    ckpt = tmp_path / "models"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"best")
    for cycle in range(5):
        model, opt = _model_and_opt(seed=cycle)
        trainer = _trainer(model, opt)
        Resume(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer").attach(trainer)
        CheckpointSaver(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer", save_interval=1,
                        n_saved=2).attach(trainer)
        # "killed" after two epochs of this process: terminate, and a write cut short leaves its temporary file
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=trainer_epochs_done(ckpt) + 2), lambda e: e.terminate())
        trainer.run([0, 1], max_epochs=100)
        (ckpt / f".checkpoint_epoch={trainer.state.epoch + 1}.pt.x1y2.tmp").write_bytes(b"cut short")
        assert set(_checkpoints(ckpt)) == {f".checkpoint_epoch={2 * cycle + 3}.pt.x1y2.tmp",
                                           f"checkpoint_epoch={2 * cycle + 1}.pt",
                                           f"checkpoint_epoch={2 * cycle + 2}.pt", "model.pt"}
    # the next run's first save also cleans what a killed write left
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer", save_interval=1,
                    n_saved=2).attach(trainer)
    trainer.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", 10))
    trainer.run([0, 1], max_epochs=11)
    assert set(_checkpoints(ckpt)) == {"checkpoint_epoch=10.pt", "checkpoint_epoch=11.pt", "model.pt"}
    assert (ckpt / "model.pt").read_bytes() == b"best"


def trainer_epochs_done(ckpt: Path) -> int:
    found = latest_checkpoint(ckpt)
    return int(found.stem.split("=")[1]) if found else 0


def test_first_save_adopts_leftovers_beyond_n_saved_and_ahead(tmp_path, caplog):
    """Files of an earlier version (8 checkpoints) are cut to n_saved; files at or after the run's epoch go."""
    import logging

    for epoch in range(1, 9):
        (tmp_path / f"model_epoch={epoch}.pt").write_bytes(b"old")
    (tmp_path / "model_epoch=12.pt").write_bytes(b"ahead")
    (tmp_path / "other_epoch=1.pt").write_bytes(b"not ours")
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    # one object saved: ignite names the files after it ("model_epoch=<n>.pt")
    CheckpointSaver(str(tmp_path), {"model": model}, save_interval=1, n_saved=3, background=False).attach(trainer)
    trainer.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", 8))
    with caplog.at_level(logging.WARNING, logger="medbundle.handlers"):
        trainer.run([0], max_epochs=10)
    assert _checkpoints(tmp_path) == ["model_epoch=10.pt", "model_epoch=8.pt", "model_epoch=9.pt", "other_epoch=1.pt"]
    assert "model_epoch=12.pt" in caplog.text and "n_saved=3" in caplog.text
    assert torch.load(tmp_path / "model_epoch=9.pt", weights_only=True)  # re-saved by this run, not the old bytes
