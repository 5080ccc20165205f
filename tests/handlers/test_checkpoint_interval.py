"""CheckpointSaver's ``interval_seconds``: interval checkpoints at most once per interval, the run's end always."""

from __future__ import annotations

import types

import pytest
from helpers.engines import _model_and_opt, _trainer
from ignite.engine import Events

import medbundle.handlers.checkpoint_saver as mb_checkpoint_saver
from medbundle.handlers import CheckpointSaver, interval_checkpoints


@pytest.fixture
def clock(monkeypatch):
    """A fake monotonic clock for the saver, advanced by hand: ``clock.now``."""
    fake = types.SimpleNamespace(now=0.0)
    fake.monotonic = lambda: fake.now
    monkeypatch.setattr(mb_checkpoint_saver, "time", fake)
    return fake


def _run(tmp_path, clock, max_epochs: int, seconds_per_epoch: float, stop_at: int | None = None, **kwargs):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: setattr(clock, "now", clock.now + seconds_per_epoch))
    if stop_at is not None:  # an early stop, attached before the saver as the bundles' phase schedule is
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_at), lambda e: e.terminate())
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=None, epoch_level=True,
                    **kwargs).attach(trainer)
    trainer.run([0, 1], max_epochs=max_epochs)
    return [n for n, _ in interval_checkpoints(tmp_path)]


def test_a_checkpoint_once_per_interval_and_at_the_last_epoch(tmp_path, clock):
    # epochs end at 10, 20, ..., 80 s; due at 25 s after the start, then 25 s after each save
    assert _run(tmp_path, clock, max_epochs=8, seconds_per_epoch=10, interval_seconds=25) == [3, 6, 8]


def test_every_epoch_when_epochs_are_longer_than_the_interval(tmp_path, clock):
    assert _run(tmp_path, clock, max_epochs=3, seconds_per_epoch=100, interval_seconds=60) == [1, 2, 3]


def test_zero_saves_every_epoch(tmp_path, clock):
    assert _run(tmp_path, clock, max_epochs=4, seconds_per_epoch=1, interval_seconds=0) == [1, 2, 3, 4]


def test_an_early_stop_is_saved(tmp_path, clock):
    assert _run(tmp_path, clock, max_epochs=10, seconds_per_epoch=1, stop_at=3, interval_seconds=60) == [3]


def test_the_interval_counts_from_each_runs_start(tmp_path, clock):
    assert _run(tmp_path / "a", clock, max_epochs=2, seconds_per_epoch=40, interval_seconds=60) == [2]
    clock.now += 1000  # a second run long after: its first epoch is not due yet, its last one is saved
    assert _run(tmp_path / "b", clock, max_epochs=3, seconds_per_epoch=40, interval_seconds=60) == [2, 3]


def test_iteration_level_saves_the_last_iteration(tmp_path, clock):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=None, epoch_level=False,
                    interval_seconds=3600).attach(trainer)
    trainer.run([0, 1, 2], max_epochs=2)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint_iteration=6.pt"]


@pytest.mark.parametrize("value", [-1, "soon", None, True, float("nan")])
def test_a_bad_interval_is_one_line_naming_the_key(tmp_path, value):
    model, _ = _model_and_opt()
    with pytest.raises(ValueError, match=r"interval_seconds must be a number of seconds >= 0.*checkpoint_seconds"):
        CheckpointSaver(str(tmp_path), {"model": model}, save_interval=1, interval_seconds=value)
