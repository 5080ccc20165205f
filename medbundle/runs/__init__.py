"""Bundles and their runs: where a bundle and its outputs live, the record of a run, its rebuild, its lock.

- :mod:`~medbundle.runs.bundle`: ``find_bundle_root``, ``resolve_bundle``, default folders, ``class_names``, ``log_run``,
  ``require_file``, the command line of a bundle command.
- :mod:`~medbundle.runs.record`: ``record_run`` writes ``<run>/run.json`` once a training really starts;
  ``read_record`` reads it back as data (never evaluated).
- :mod:`~medbundle.runs.rebuild`: ``recorded`` / ``recorded_network`` rebuild a run's settings and network from
  its record; ``check_run`` stops a command that contradicts them.
- :mod:`~medbundle.runs.lock`: ``lock_run``, one writer per run folder.
"""

from __future__ import annotations

from medbundle.runs.bundle import (
    _command_line,  # noqa: F401 (the command-line reader other modules use)
    class_names,
    default_dataset_dir,
    default_output_dir,
    find_bundle_root,
    log_run,
    resolve_bundle,
    medbundle_home,
    require_file,
    trained_model,
)
from medbundle.runs.lock import LOCK_NAME, RunFolderLocked, lock_run, unlock_run
from medbundle.runs.rebuild import build_network, check_run, recorded, recorded_network
from medbundle.runs.record import (
    COMPONENTS,
    RECORD_NAME,
    SETTINGS,
    RunRecordError,
    data_fingerprint,
    package_versions,
    plain_value,
    read_record,
    record_run,
)

__all__ = [
    "find_bundle_root",
    "resolve_bundle",
    "medbundle_home",
    "default_output_dir",
    "default_dataset_dir",
    "class_names",
    "log_run",
    "require_file",
    "trained_model",
    "record_run",
    "read_record",
    "data_fingerprint",
    "package_versions",
    "plain_value",
    "RunRecordError",
    "RECORD_NAME",
    "SETTINGS",
    "COMPONENTS",
    "recorded",
    "recorded_network",
    "build_network",
    "check_run",
    "lock_run",
    "unlock_run",
    "RunFolderLocked",
    "LOCK_NAME",
]
