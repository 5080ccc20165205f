"""medbundle.runs.lock: one writer per run folder; a live holder stops a second run, a dead one's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import medbundle
from medbundle.runs import LOCK_NAME, RunFolderLocked, lock_run, unlock_run

# the other process loads medbundle.runs.lock and what it imports, not the whole package (1.5 s instead of 6 s: the
# package imports MONAI): its two packages are stood in for by empty ones with the real folders as their paths
_LOCK_ONLY = (f"import sys, types; root = {str(Path(medbundle.__file__).parent)!r}\n"
              "for name, path in (('medbundle', root), ('medbundle.runs', root + '/runs')):\n"
              "    sys.modules[name] = types.ModuleType(name); sys.modules[name].__path__ = [path]\n"
              "from medbundle.runs.lock import lock_run\n")
HOLD = _LOCK_ONLY + "import time; lock_run(sys.argv[1], 'test'); print('held', flush=True); time.sleep(120)"


@pytest.fixture
def holder(tmp_path):
    """A separate process that holds the lock of ``tmp_path / 'run'`` until killed."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_lock_names_the_holder_and_is_released_at_exit(tmp_path):
    folder = tmp_path / "run"
    path = lock_run(folder, "train")
    try:
        assert path == folder.resolve() / LOCK_NAME
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["command"] == "train"
        assert lock_run(folder) == path  # the holder itself may take it again
    finally:
        unlock_run(folder)
    assert not path.exists()


def test_second_run_stops_with_one_line_naming_folder_and_pid(holder):
    folder, proc = holder
    with pytest.raises(RunFolderLocked) as info:
        lock_run(folder, "evaluate")
    message = str(info.value)
    assert str(folder.resolve()) in message and f"pid {proc.pid}" in message and "\n" not in message
    assert isinstance(info.value, ValueError)  # a user error: reported as one line by medbundle.errors


def test_lock_of_a_killed_process_is_taken_over_with_a_warning(holder, caplog):
    folder, proc = holder
    proc.kill()  # SIGKILL: no clean-up, the lock file still names the dead process
    proc.wait()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == proc.pid
    with caplog.at_level(logging.WARNING, logger="medbundle.runs"):
        lock_run(folder, "train")
    try:
        assert f"pid {proc.pid}" in caplog.text and "stale" in caplog.text
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        unlock_run(folder)


def test_stale_lock_file_without_holder_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 999999999, "host": "elsewhere", "started": "yesterday"}))
    with caplog.at_level(logging.WARNING, logger="medbundle.runs"):
        lock_run(folder)
    try:
        assert "pid 999999999 on elsewhere" in caplog.text
    finally:
        unlock_run(folder)


def test_only_rank_zero_locks(tmp_path, monkeypatch):
    monkeypatch.setattr("medbundle.runs.lock.is_rank_zero", lambda: False)
    assert lock_run(tmp_path / "run") is None
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_lock_released_when_holder_exits_normally(tmp_path):
    folder = tmp_path / "run"
    subprocess.run([sys.executable, "-c", _LOCK_ONLY + "lock_run(sys.argv[1])", str(folder)], check=True, timeout=120)
    assert not (folder / LOCK_NAME).exists()
    start = time.time()
    lock_run(folder)
    unlock_run(folder)
    assert time.time() - start < 5
