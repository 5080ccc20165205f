"""One writer per run folder: an exclusive lock file ``<output_dir>/.lock`` held for the life of the process.

The lock is an ``fcntl.flock`` on the file, which the kernel releases when its holder dies, however it dies; the
file names the holder (pid, host, start time) for the message a second run stops with. A lock file left behind by
a killed process (its flock released) is stale: it is named in a warning and taken over.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from medbundle.runtime import is_rank_zero

__all__ = ["RunFolderLocked", "LOCK_NAME", "lock_run", "unlock_run"]

logger = logging.getLogger("medbundle.runs")

LOCK_NAME = ".lock"
_HELD: dict[str, tuple[int, int]] = {}  # run folder -> (fd, pid of the process that took it)


class RunFolderLocked(ValueError):
    """Another live process holds the run folder's lock (a user error: the ``--output_dir`` given is in use)."""


def _holder(fd: int) -> dict:
    """The holder record in the lock file (``{}`` when empty or unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
            + (f", {holder['command']}" if holder.get("command") else ""))


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (TypeError, ValueError, OSError):
        return False
    return True


def lock_run(output_dir: str | os.PathLike, command: str = "") -> Path | None:
    """Take the run folder's lock for the rest of this process's life (released at exit, or by :func:`unlock_run`).

    Take it before anything is written to the folder. Only rank 0 of a distributed run locks (the other ranks do
    not write there). Taking a lock this process already holds does nothing.

    Args:
        output_dir: the run folder (created if missing).
        command: what holds it, for the message a second run gets (e.g. ``"train"``).

    Returns:
        the lock file, or None on ranks other than 0.

    Raises:
        RunFolderLocked: a live process holds the folder; the message names the folder and that process's pid.
    """
    if not is_rank_zero():
        return None
    folder = Path(output_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if str(folder) in _HELD:
        return path
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunFolderLocked(
                f"{folder}: in use by another run ({_describe(holder)}); wait until it ends, or give another "
                "--output_dir") from None
        except OSError as e:  # no flock on this file system: judge the holder by its pid (same host only)
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            holder = _holder(fd)
            if holder and holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid")):
                os.close(fd)
                raise RunFolderLocked(
                    f"{folder}: in use by another run ({_describe(holder)}); wait until it ends, or give another "
                    "--output_dir") from None
        try:  # the lock file may have been removed by its last holder between our open and our flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _holder(fd)
    if stale:
        logger.warning("%s: taking over a stale lock of a run that is no longer running (%s)", folder, _describe(stale))
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": command}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
    _HELD[str(folder)] = (fd, os.getpid())
    if len(_HELD) == 1:
        atexit.register(_release_all)
    return path


def unlock_run(output_dir: str | os.PathLike) -> None:
    """Release this process's lock on ``output_dir`` (removing the lock file); nothing when it holds none."""
    folder = str(Path(output_dir).expanduser().resolve())
    held = _HELD.pop(folder, None)
    if held is None:
        return
    fd, pid = held
    if pid == os.getpid():  # a forked child (a data-loader worker) never removes its parent's lock
        try:
            os.unlink(Path(folder) / LOCK_NAME)
        except FileNotFoundError:
            pass
    os.close(fd)


def _release_all() -> None:
    for folder in list(_HELD):
        unlock_run(folder)
