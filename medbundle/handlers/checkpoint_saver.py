"""Atomic checkpoints: MONAI's ``CheckpointSaver`` writing through a temporary file, in the background; the latest.

:func:`wait_for_checkpoints` blocks until every checkpoint being written in the background is on disk;
:func:`interval_checkpoints` lists a folder's interval checkpoints by epoch.
"""

from __future__ import annotations

import atexit
import copy as copy_module
import logging
import re
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers.checkpoint import BaseSaveHandler, Checkpoint
from monai.handlers import CheckpointSaver as _MonaiCheckpointSaver

from medbundle.utils import atomic_write

__all__ = ["CheckpointSaver", "interval_checkpoints", "latest_checkpoint", "wait_for_checkpoints"]

logger = logging.getLogger("medbundle.handlers")

# save handlers that may have a background write in flight (weak: a handler nobody holds has nothing pending)
_BACKGROUND_HANDLERS: weakref.WeakSet[_AtomicSaveHandler] = weakref.WeakSet()


class _AtomicSaveHandler(BaseSaveHandler):
    """Save a checkpoint through a temporary file and an atomic rename (readable by group and others).

    With ``background``, the calling thread takes a consistent snapshot of the checkpoint (training may change
    the tensors as soon as the call returns): every tensor is copied into a buffer kept from the previous save
    (a memory copy; the buffers hold one copy of the checkpoint's tensors between saves), the rest is
    deep-copied. A background thread then serialises the snapshot into the file, fsyncs and renames it into
    place, and only then removes the files ignite asked to remove before this save, so the newest checkpoint on
    disk is never the one removed. One write is in flight at most: the next save waits for it first, and
    re-raises its error.

    Args:
        dirname: folder of the checkpoints.
        filename: a fixed file name for every save, or None for the name ignite chooses.
        background: write the file in a background thread.
    """

    def __init__(self, dirname: str | Path, filename: str | None = None, background: bool = False) -> None:
        self.dirname = Path(dirname)
        self.filename = filename
        self.background = background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._buffers: list[torch.Tensor] = []
        self._removals: list[Path] = []

    def __call__(self, checkpoint: dict, filename: str, metadata: dict | None = None) -> None:
        self.wait()
        path = self.dirname / (self.filename or filename)
        if not self.background:
            with atomic_write(path, "wb") as f:
                torch.save(checkpoint, f)
            return
        snapshot = self._snapshot(checkpoint)
        removals, self._removals = self._removals, []
        self._thread = threading.Thread(target=self._write, args=(path, snapshot, removals),
                                        name=f"checkpoint writer {path.name}")
        _BACKGROUND_HANDLERS.add(self)
        self._thread.start()

    def _snapshot(self, checkpoint: Any) -> Any:
        """A copy of ``checkpoint`` that training cannot change: its tensors copied into the kept buffers."""
        buffers: list[torch.Tensor] = []
        old = iter(self._buffers)

        def copy(obj: Any) -> Any:
            if isinstance(obj, torch.Tensor):
                obj = obj.detach()
                buf = next(old, None)
                if buf is None or (buf.shape, buf.stride(), buf.dtype, buf.device) != \
                        (obj.shape, obj.stride(), obj.dtype, obj.device):
                    buf = obj.clone(memory_format=torch.preserve_format)
                else:
                    buf.copy_(obj)
                buffers.append(buf)
                return buf
            if isinstance(obj, dict):  # OrderedDict and its attributes (a module state dict's _metadata) kept
                out = copy_module.copy(obj)
                if hasattr(obj, "__dict__"):
                    out.__dict__.update(copy_module.deepcopy(obj.__dict__))
                for k, v in obj.items():
                    out[k] = copy(v)
                return out
            if type(obj) in (list, tuple):
                return type(obj)(copy(v) for v in obj)
            return copy_module.deepcopy(obj)

        snapshot = copy(checkpoint)
        self._buffers = buffers
        return snapshot

    def _write(self, path: Path, snapshot: Any, removals: list[Path]) -> None:
        try:
            with atomic_write(path, "wb") as f:
                torch.save(snapshot, f)
            for old in removals:
                if old != path:
                    old.unlink(missing_ok=True)
        except BaseException as e:  # re-raised by wait() in the training thread
            e.add_note(f"(while writing the checkpoint {path} in the background)")
            self._error = e

    def wait(self) -> None:
        """Wait until the background write in flight (if any) is done; raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def remove(self, filename: str) -> None:
        # a fixed file name is replaced atomically by the next save: removing it first would open
        # a window in which a kill leaves no checkpoint at all
        if self.filename is not None:
            return
        if self.background:
            # ignite removes the oldest checkpoint just before saving the next one: the writer removes it
            # once the new file is on disk
            self._removals.append(self.dirname / filename)
            return
        (self.dirname / filename).unlink(missing_ok=True)


def wait_for_checkpoints() -> None:
    """Block until every checkpoint being written in the background is on disk; raise the first write error."""
    errors = []
    for handler in list(_BACKGROUND_HANDLERS):
        try:
            handler.wait()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


@atexit.register
def _wait_at_exit() -> None:
    # non-daemon writer threads finish before atexit runs; this reports their errors instead of losing them
    for handler in list(_BACKGROUND_HANDLERS):
        try:
            handler.wait()
        except Exception:
            logger.exception("a checkpoint could not be written")


class CheckpointSaver(_MonaiCheckpointSaver):
    """MONAI's ``CheckpointSaver`` whose files are written atomically.

    MONAI 1.6 saves with ``atomic=False``: a process killed while saving leaves a truncated file
    that a later run fails to load, or loads wrong. Here every file goes to a temporary name first
    and is renamed into place; a fixed-name file (``key_metric_filename``) is never deleted before
    its replacement exists. ``state_dict``/``load_state_dict`` carry the record of the best
    key-metric checkpoint, so saving this saver inside the full training state lets a resumed run
    keep its best model until a better one comes.

    With ``background`` (the default), the state's tensors are copied into buffers kept from the previous save
    when the save is due (a consistent snapshot, a memory copy) and the file is serialised, written, fsync'ed
    and renamed into place by a background thread while training goes on. The write is waited for (and its
    error raised in the training thread) at the next save, at the end of the next iteration of the engine, and
    when the engine completes, terminates or raises (every checkpoint in flight is on disk when ``run()``
    returns), and at process exit.
    ``n_saved`` holds as before: the oldest file is removed only once the new one is on disk. A process
    killed during a write leaves the previous files (and a temporary file), never a truncated one. The
    snapshot buffers cost memory of the size of the checkpoint's tensors, kept between saves.

    With ``interval_seconds`` > 0, an interval checkpoint is also at least that many seconds after the previous
    one (or after the start of the run): a save that falls sooner is skipped, except at the run's last epoch
    (or iteration) and at an epoch after which the engine stops early (``engine.terminate()`` from an early
    stopping handler), which are always saved. A run killed in between resumes from a checkpoint at most
    ``interval_seconds`` (plus one epoch) old; short epochs then pay the save once per interval instead of
    once per epoch.

    ``n_saved`` also holds across runs in the same folder (a resumed run): at its first interval save a run
    takes over the interval checkpoints already in ``save_dir`` (named as this saver names them) as its own
    earlier saves, so the oldest ones are removed as new ones come, and exactly ``n_saved`` stay. Files of
    the same or a later epoch or iteration than the one being saved (a run resumed from an earlier checkpoint
    because a later one could not be read, or a folder of another run) are removed then, with a warning, and
    so are the temporary files of interval checkpoints that a killed write left.

    Args:
        save_dir: folder of the checkpoints.
        save_dict: objects to save.
        engine_key: when given, the engine this handler is attached to is saved under this key too
            (a config cannot name the trainer inside the trainer's own handlers: that is circular).
        background: write the files in a background thread; False writes them before the save returns.
        interval_seconds: the least time in seconds between two interval checkpoints (see above); 0: every
            ``save_interval`` epochs or iterations as in MONAI.
        kwargs: the other arguments of :class:`monai.handlers.CheckpointSaver`.
    """

    def __init__(
        self, save_dir: str, save_dict: dict, engine_key: str | None = None, background: bool = True,
        interval_seconds: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(save_dir=save_dir, save_dict=save_dict, **kwargs)
        self.engine_key = engine_key
        self.background = background
        try:
            seconds = float(interval_seconds)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not seconds >= 0 or isinstance(interval_seconds, bool):
            raise ValueError(f"CheckpointSaver: interval_seconds must be a number of seconds >= 0, got "
                             f"{interval_seconds!r}; set checkpoint_seconds in train.json (or --checkpoint_seconds) "
                             f"to a number, 0 for a checkpoint every epoch")
        self.interval_seconds = seconds
        self._last_interval_save = time.monotonic()
        self._adopted = False  # the interval checkpoints on disk are taken over at the first save of each run
        fixed = {
            "_final_checkpoint": kwargs.get("final_filename"),
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_interval_checkpoint": None,
        }
        for attr, filename in fixed.items():
            checkpoint = getattr(self, attr)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicSaveHandler(save_dir, filename, background)

    def state_dict(self) -> dict:
        return self._key_metric_checkpoint.state_dict() if self._key_metric_checkpoint is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if self._key_metric_checkpoint is not None and state_dict:
            super().load_state_dict(state_dict)

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine  # the same dict object the ignite checkpoints save
        super().attach(engine)
        if self._interval_checkpoint is not None:
            engine.add_event_handler(Events.STARTED, self._new_run)
        if self.background:
            # a checkpoint taken at an epoch's end is on disk when the next iteration ends (a kill later
            # in that epoch finds it), and every checkpoint in flight when the engine stops
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.wait)
            engine.add_event_handler(Events.COMPLETED, self._wait_all)
            engine.add_event_handler(Events.TERMINATE, self._wait_all)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self._wait_all_then_raise)

    def _new_run(self, engine: Engine) -> None:
        self._adopted = False
        self._last_interval_save = time.monotonic()

    def interval_completed(self, engine: Engine) -> None:
        if self.interval_seconds > 0 and time.monotonic() - self._last_interval_save < self.interval_seconds \
                and not self._run_ends(engine):
            return
        self._last_interval_save = time.monotonic()
        if not self._adopted:
            self._adopt_files_on_disk(engine)
            self._adopted = True
        super().interval_completed(engine)

    def _run_ends(self, engine: Engine) -> bool:
        """Whether the engine stops after this epoch (or iteration): its last one, or an early stop."""
        state = engine.state
        if engine.should_terminate:
            return True
        if self.epoch_level:
            return state.max_epochs is not None and state.epoch >= state.max_epochs
        return state.max_epochs is not None and state.epoch_length is not None and \
            state.iteration >= state.max_epochs * state.epoch_length

    def _adopt_files_on_disk(self, engine: Engine) -> None:
        """Make the interval checkpoints in ``save_dir`` this run's earlier saves (see the class docstring)."""
        checkpoint = self._interval_checkpoint
        self.wait()  # the file in flight is on disk
        name = "checkpoint" if len(checkpoint.to_save) > 1 else next(iter(checkpoint.to_save))
        marker = "\0"
        example = checkpoint._get_filename_pattern(None).format(
            filename_prefix=checkpoint.filename_prefix, ext=checkpoint.ext, name=name,
            score_name=checkpoint.score_name, score=marker, global_step=None,
        )
        head, tail = example.split(marker)
        pattern = re.compile(rf"{re.escape(head)}(\d+){re.escape(tail)}")
        temporary = re.compile(rf"\.{re.escape(head)}\d+{re.escape(tail)}\..*\.tmp")
        folder = Path(self.save_dir)
        files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))) \
            if folder.is_dir() else []
        now = engine.state.epoch if self.epoch_level else engine.state.iteration
        ahead = [p for n, p in files if n >= now]
        kept = [(n, p) for n, p in files if n < now]
        n_saved = checkpoint.n_saved
        while n_saved is not None and len(kept) > n_saved:
            ahead.append(kept.pop(0)[1])  # beyond n_saved (left by an earlier run): the oldest go
        for path in ahead:
            path.unlink(missing_ok=True)
        if ahead:
            logger.warning(f"{folder}: removed {', '.join(sorted(p.name for p in ahead))} (of an earlier run there, "
                           f"at or after this run's {'epoch' if self.epoch_level else 'iteration'} {now}, or beyond "
                           f"n_saved={n_saved})")
        for path in folder.glob(".*.tmp") if folder.is_dir() else []:
            if temporary.fullmatch(path.name):
                path.unlink(missing_ok=True)
        checkpoint._saved = [Checkpoint.Item(n, p.name) for n, p in kept]

    def _handlers(self) -> list[_AtomicSaveHandler]:
        checkpoints = (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint)
        return [c.save_handler for c in checkpoints if c is not None and isinstance(c.save_handler, _AtomicSaveHandler)]

    def wait(self, engine: Engine | None = None) -> None:
        """Wait until this saver's checkpoints in flight are on disk; raise a background write's error."""
        for handler in self._handlers():
            handler.wait()

    def _wait_all(self, engine: Engine) -> None:
        wait_for_checkpoints()

    def _wait_all_then_raise(self, engine: Engine, e: Exception) -> None:
        # any handler of EXCEPTION_RAISED stops ignite from raising: this one raises the engine's error again
        try:
            wait_for_checkpoints()
        except Exception:
            logger.exception("a checkpoint could not be written")
        raise e


def interval_checkpoints(ckpt_dir: str | Path, prefix: str = "checkpoint") -> list[tuple[int, Path]]:
    """The interval checkpoints ``<prefix>_epoch=<n>.pt`` of ``ckpt_dir`` as ``(n, path)``, oldest first."""
    pattern = re.compile(rf"{re.escape(prefix)}_epoch=(\d+)\.pt")
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.glob("*.pt") if (m := pattern.fullmatch(p.name)))


def latest_checkpoint(ckpt_dir: str | Path, prefix: str = "checkpoint") -> Path | None:
    """The interval checkpoint of the highest epoch in ``ckpt_dir`` (``<prefix>_epoch=<n>.pt``), or None."""
    found = interval_checkpoints(ckpt_dir, prefix)
    return found[-1][1] if found else None
