"""Resume an interrupted training run from its latest full checkpoint, or clear an earlier run for a fresh one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader

from medbundle.handlers.checkpoint_saver import latest_checkpoint, wait_for_checkpoints
from medbundle.runtime import is_rank_zero

__all__ = ["Resume"]

logger = logging.getLogger("medbundle.handlers")


class Resume:
    """Continue an interrupted training run from its latest full checkpoint, or start afresh.

    When enabled, at the trainer's start it loads the newest ``checkpoint_epoch=<n>.pt`` of
    ``ckpt_dir`` into ``load_dict`` (model, optimizer, scheduler, the best-model saver's record,
    and the trainer itself: training continues at epoch ``n+1``). Without a checkpoint it logs
    that training starts from scratch. When disabled, the interval checkpoints and the epoch log
    of an earlier run in the same folder are removed, so that they neither mix with the new run's
    nor get resumed later in its place. Either way, checkpoints still being written in the background by
    this process are waited for first, and temporary files that a killed write left in ``ckpt_dir`` are removed
    (by rank 0).

    Args:
        ckpt_dir: folder of the interval checkpoints.
        load_dict: objects to restore, as saved (``{"model": ..., "optimizer": ...}``).
        engine_key: key under which the engine this handler is attached to was saved.
        enabled: the bundle's ``resume`` switch.
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
        self.enabled = enabled
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
        if self.ckpt_dir.is_dir():
            for path in self.ckpt_dir.glob(".*.pt.*.tmp"):
                path.unlink(missing_ok=True)

    def _fresh_start(self, engine: Engine) -> None:
        self._remove_temporary_files()
        stale = sorted(self.ckpt_dir.glob("checkpoint_epoch=*.pt")) if self.ckpt_dir.is_dir() else []
        if self.log_csv is not None and self.log_csv.is_file():
            stale.append(self.log_csv)
        for path in stale:
            path.unlink()
        if stale:
            logger.warning(
                f"fresh run in {self.ckpt_dir.parent}: removed {len(stale)} file(s) of an earlier run there "
                "(pass --resume true to continue a run instead)"
            )

    def __call__(self, engine: Engine) -> None:
        if is_rank_zero():
            self._remove_temporary_files()
        else:
            wait_for_checkpoints()
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            logger.info(f"resume: no checkpoint in {self.ckpt_dir}, training starts from scratch")
            return
        CheckpointLoader(str(path), self.load_dict, map_location=self.map_location)(engine)
        self.resumed_from = path
        logger.info(f"resume: continuing from {path} at epoch {engine.state.epoch + 1}/{engine.state.max_epochs}")
