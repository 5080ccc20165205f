"""Resume an interrupted training run from its latest intact full checkpoint, or clear an earlier run for a fresh
one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from torch.optim.lr_scheduler import LRScheduler

from medbundle.data.errors import DataError
from medbundle.handlers.checkpoint_saver import interval_checkpoints, wait_for_checkpoints
from medbundle.handlers.epoch_logger import EpochLogState
from medbundle.handlers.random_state import RandomState
from medbundle.options import as_bool
from medbundle.runtime import is_rank_zero

__all__ = ["Resume"]

logger = logging.getLogger("medbundle.handlers")

# scheduler state that is its position in the schedule (from the checkpoint), not the schedule's shape (the config)
_POSITION_KEYS = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial", "base_lrs",
                  "verbose", "_initial_step"}


class Resume:
    """Continue an interrupted training run from its latest intact full checkpoint, or start afresh.

    When enabled, at the trainer's start it loads the newest ``checkpoint_epoch=<n>.pt`` of ``ckpt_dir`` that
    can be read into ``load_dict`` (model, optimizer, scheduler, the best-model saver's record, the epoch log,
    the random-number state, and the trainer itself: training continues at epoch ``n+1``). A checkpoint that
    cannot be read (a truncated file) is named in a warning and the one before it is used; when none can be
    read, the error names the folder and says that ``--resume false`` starts afresh. Without a checkpoint it
    logs that training starts from scratch. When disabled, the interval checkpoints and the epoch log of an
    earlier run in the same folder are removed, so that they neither mix with the new run's nor get resumed
    later in its place. Either way, checkpoints still being written in the background by this process are
    waited for first, and temporary files that a killed write left in ``ckpt_dir`` (and next to ``log_csv``)
    are removed (by rank 0).

    The run length and the learning-rate schedule are the ones of the resumed run's configuration; the
    checkpoint gives the position in them. A run resumed with a larger ``--epochs`` than it was started with
    follows the schedule rebuilt for the new length from the saved step: the shape of every LR scheduler in
    ``load_dict`` (``T_max`` of a cosine schedule, ``step_size``, ...) is kept as configured, its step count is
    the checkpoint's, and the learning rate of the next epoch is the schedule's value at that step (its closed
    form): a 16-epoch cosine run resumed with ``--epochs 30`` goes on at the learning rate that a 30-epoch run
    has at epoch 17 and reaches 0 at epoch 30, instead of staying at the 0 the old schedule ended with. With an
    unchanged configuration nothing is recomputed (the run continues exactly as it would have).

    Args:
        ckpt_dir: folder of the interval checkpoints.
        load_dict: objects to restore, as saved (``{"model": ..., "optimizer": ...}``).
        engine_key: key under which the engine this handler is attached to was saved.
        enabled: the bundle's ``resume`` switch (a boolean, or true/false/yes/no/1/0 as a command line gives it).
        map_location: passed to ``torch.load``.
        log_csv: the run's epoch log (see :class:`~medbundle.handlers.EpochLogger`), removed on a fresh start.
    """

    def __init__(
        self,
        ckpt_dir: str,
        load_dict: dict,
        engine_key: str | None = "trainer",
        enabled: bool = True,
        map_location: Any = "cpu",
        log_csv: str | None = None,
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.log_csv = Path(log_csv) if log_csv else None
        self.load_dict = load_dict
        self.engine_key = engine_key
        self.enabled = as_bool(enabled, "Resume's enabled (bundle key resume)")
        self.map_location = map_location
        self.resumed_from: Path | None = None

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            if self.engine_key is not None:
                self.load_dict = {**self.load_dict, self.engine_key: engine}
            engine.add_event_handler(Events.STARTED, self)
        elif is_rank_zero():
            engine.add_event_handler(Events.STARTED, self._fresh_start)

    def _remove_temporary_files(self) -> None:
        # atomic_write's temporary names (".<name>.<random>.tmp") of writes that a killed process never finished
        wait_for_checkpoints()
        stale = list(self.ckpt_dir.glob(".*.pt.*.tmp")) if self.ckpt_dir.is_dir() else []
        if self.log_csv is not None and self.log_csv.parent.is_dir():
            stale += self.log_csv.parent.glob(f".{self.log_csv.name}.*.tmp")
        for path in stale:
            path.unlink(missing_ok=True)

    def _fresh_start(self, engine: Engine) -> None:
        self._remove_temporary_files()
        stale = [p for _, p in interval_checkpoints(self.ckpt_dir)]
        if self.log_csv is not None and self.log_csv.is_file():
            stale.append(self.log_csv)
        for path in stale:
            path.unlink()
        if stale:
            logger.warning(
                f"fresh run in {self.ckpt_dir.parent}: removed {len(stale)} file(s) of an earlier run there "
                "(pass --resume true to continue a run instead)"
            )

    def _load_latest_intact(self) -> tuple[Path, dict] | None:
        """The newest interval checkpoint that can be read, and its content; warn about each one that cannot."""
        found = interval_checkpoints(self.ckpt_dir)
        broken = []
        for _, path in reversed(found):
            try:
                checkpoint = torch.load(path, map_location=self.map_location, weights_only=True)
            except Exception as e:  # truncated zip, unreadable file, not a checkpoint
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                logger.warning(f"resume: {path} cannot be read ({reason}); trying the checkpoint before it")
                broken.append(path.name)
                continue
            if broken:
                logger.warning(f"resume: falling back to {path} ({', '.join(broken)} could not be read)")
            return path, checkpoint
        if broken:
            raise DataError(
                f"{self.ckpt_dir}: no intact checkpoint to resume from ({', '.join(reversed(broken))} cannot be "
                "read, truncated or damaged); pass --resume false to start afresh (this removes them)"
            )
        return None

    def _present(self, path: Path, checkpoint: dict) -> dict:
        """The objects of ``load_dict`` that ``checkpoint`` holds; a missing optional one (epoch log, random state:
        a checkpoint of an earlier version) is a warning, a missing other one an error."""
        missing = [k for k in self.load_dict if k not in checkpoint]
        required = [k for k in missing if not isinstance(self.load_dict[k], (EpochLogState, RandomState))]
        if required:
            raise DataError(
                f"{path}: the checkpoint holds no {', '.join(map(repr, required))} (it holds {', '.join(checkpoint)}): "
                "it is not a full training checkpoint of this configuration; pass --resume false to start afresh"
            )
        if missing:
            logger.warning(f"resume: {path} holds no {', '.join(map(repr, missing))} (a checkpoint of an earlier "
                           "version): not restored, the resumed run's log and random draws may differ from an "
                           "uninterrupted run")
        return {k: v for k, v in self.load_dict.items() if k not in missing}

    def __call__(self, engine: Engine) -> None:
        if is_rank_zero():
            self._remove_temporary_files()
        else:
            wait_for_checkpoints()
        loaded = self._load_latest_intact()
        if loaded is None:
            logger.info(f"resume: no checkpoint in {self.ckpt_dir}, training starts from scratch")
            return
        path, checkpoint = loaded
        schedulers = {k: (v, dict(v.state_dict())) for k, v in self.load_dict.items() if isinstance(v, LRScheduler)}
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=self._present(path, checkpoint), checkpoint=checkpoint)
        if max_epochs is not None:
            if engine.state.epoch > max_epochs:
                raise DataError(
                    f"{path}: this run reached epoch {engine.state.epoch}, beyond the {max_epochs} epochs asked for; "
                    f"pass --epochs {engine.state.epoch + 1} or more to train on, or --resume false to start afresh"
                )
            engine.state.max_epochs = max_epochs
        for name, (scheduler, configured) in schedulers.items():
            _keep_configured_schedule(name, scheduler, configured)
        self.resumed_from = path
        logger.info(f"resume: continuing from {path} at epoch {engine.state.epoch + 1}/{engine.state.max_epochs}")


def _keep_configured_schedule(name: str, scheduler: LRScheduler, configured: dict) -> None:
    """Give ``scheduler`` (loaded from a checkpoint) back its configured shape, at the loaded position."""
    loaded = scheduler.state_dict()
    changed = {}
    for key, value in configured.items():
        if key in _POSITION_KEYS or key not in loaded:
            continue
        try:
            same = bool(loaded[key] == value)
        except Exception:  # values that do not compare (tensors of other shapes, ...): treat as changed
            same = False
        if not same:
            changed[key] = (loaded[key], value)
    if not changed:
        return
    for key, (_, value) in changed.items():
        setattr(scheduler, key, value)
    what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
    closed_form = getattr(scheduler, "_get_closed_form_lr", None)
    if closed_form is None:
        logger.warning(
            f"resume: {name} now has {what} (the configuration's), but {type(scheduler).__name__} has no closed "
            "form: the learning rate goes on from its saved value"
        )
        return
    lrs = closed_form()
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)
    logger.info(
        f"resume: {name} rebuilt for this run ({what}) at step {scheduler.last_epoch}: "
        f"learning rate {', '.join(f'{lr:.3g}' for lr in lrs)}"
    )
