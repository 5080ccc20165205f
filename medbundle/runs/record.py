"""The record of a training run, ``<output_dir>/run.json``: written once the run really starts, read back as data.

The record holds what rebuilds the run's model and preprocessing without the config files it was trained with:
the plain (JSON) values of :data:`SETTINGS` and of the :data:`COMPONENTS` (``network_def`` with its ``_target_``
and keyword arguments resolved to JSON values), the merged raw config with the command-line overrides, the package
versions, and a fingerprint of the data lists. :func:`read_record` reads it back as plain JSON: nothing in it is
ever evaluated, and a ``$``/``@``/``%`` string where a plain value belongs is refused (:func:`plain_value`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from medbundle.runs.bundle import _command_line
from medbundle.runtime import is_rank_zero
from medbundle.utils import atomic_write_json

__all__ = ["RunRecordError", "RECORD_NAME", "SETTINGS", "COMPONENTS", "record_run", "read_record",
           "data_fingerprint", "package_versions", "plain_value", "bundle_parser"]

logger = logging.getLogger("medbundle.runs")

RECORD_NAME = "run.json"
FORMAT = 2
# the plain settings that rebuild a run's preprocessing and name its classes (those a bundle defines)
SETTINGS = ("bundle_name", "class_names", "spatial_size", "data_key", "label_key", "image_column", "dataset_dir",
            "max_pixels")
# components recorded as ``{"_target_": ..., <kwarg>: <plain value>}``
COMPONENTS = ("network_def", "datalists")
# options of ``monai.bundle run`` itself, not config overrides
RUN_OPTIONS = ("run_id", "init_id", "final_id", "meta_file", "logging_file", "tracking", "args_file", "workflow_type")
PACKAGES = ("medbundle", "monai", "torch", "numpy", "pytorch-ignite")
FINGERPRINT_METHOD = ("sha256 over the sorted lines 'split, id, image, label' of every item, then 'path, size, "
                      "mtime_ns' of every distinct file the images are read from (file metadata, not content)")


class RunRecordError(ValueError):
    """A run record (``run.json``) that is missing, unreadable, holds code, or disagrees with the command."""


def plain_value(value: Any, where: str) -> Any:
    """``value`` when it is plain JSON data (None, bool, number, string, list, dict) with no config syntax.

    Args:
        value: a value read from a run record.
        where: what it is, for the message (``"<run>/run.json: settings.spatial_size"``).

    Raises:
        RunRecordError: a string starting with ``$``, ``@`` or ``%`` (a config expression or reference: a record
            is data, it is never evaluated), or a value that is not JSON data.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if value[:1] in ("$", "@", "%"):
            raise RunRecordError(f"{where}: {value[:60]!r} is a config expression; a run record holds data only and "
                                 "is never evaluated. Remove it from the record, or retrain to write a new one.")
        return value
    if isinstance(value, (list, tuple)):
        return [plain_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): plain_value(v, f"{where}.{k}") for k, v in value.items()}
    raise RunRecordError(f"{where}: {type(value).__name__} is not JSON data")


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data; anything else as its ``repr`` string (for the informative parts of a record)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run's results depend on (None for one not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def data_fingerprint(datalists: Mapping[str, Sequence[Mapping]]) -> dict[str, Any]:
    """A fingerprint of the data lists a run trains, validates and tests on (see :data:`FINGERPRINT_METHOD`).

    Args:
        datalists: ``{"train": [...], "val": [...], "test": [...]}`` of items with ``image``, ``label``, ``id``.

    Returns:
        ``{"sha256": ..., "method": ..., "items": {split: count}, "files": n}``.
    """
    lines, files = [], set()
    for split, items in datalists.items():
        for item in items:
            image = str(item.get("image", ""))
            lines.append(json.dumps([split, str(item.get("id", "")), image, _jsonable(item.get("label"))]))
            files.add(image.split("#", 1)[0])
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode() + b"\n")
    for file in sorted(files):
        try:
            st = os.stat(file)
            digest.update(f"{file}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{file}\tmissing\n".encode())
    return {"sha256": digest.hexdigest(), "method": FINGERPRINT_METHOD,
            "items": {split: len(items) for split, items in datalists.items()}, "files": len(files)}


def bundle_parser(files: Sequence[str], overrides: Mapping[str, Any], meta_file: str | Sequence[str] | None = None):
    """A ``monai.bundle.ConfigParser`` of ``files`` merged as ``monai.bundle run`` merges them, with ``overrides``.

    Args:
        files: the config files, in merge order.
        overrides: ``{id: value}`` applied after the files (options of ``monai.bundle run`` itself are skipped).
        meta_file: the metadata file(s); default: ``metadata.json`` beside the first config file, where present.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(list(files))
    meta = meta_file if meta_file is not None else Path(files[0]).parent / "metadata.json"
    if isinstance(meta, (str, os.PathLike)) and not Path(meta).is_file():
        meta = None
    if meta is not None:
        parser.read_meta(meta if isinstance(meta, (str, os.PathLike)) else list(meta))
    parser.update({k: v for k, v in overrides.items() if k not in RUN_OPTIONS})
    return parser


def _resolved(parser, id: str, unrecorded: dict[str, str]) -> Any:
    try:
        return plain_value(_jsonable_strict(parser.get_parsed_content(id)), id)
    except Exception as e:  # recorded as missing, with the reason: the run goes on, its rebuild will say why
        unrecorded[id] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        return None


def _jsonable_strict(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable_strict(v) for v in value]
    if isinstance(value, list):
        return [_jsonable_strict(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable_strict(v) for k, v in value.items()}
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


def _settings(parser) -> tuple[dict[str, Any], dict[str, str]]:
    """The plain values of :data:`SETTINGS` and :data:`COMPONENTS` the config defines, and those it could not."""
    settings: dict[str, Any] = {}
    unrecorded: dict[str, str] = {}
    for key in SETTINGS:
        if key in parser:
            settings[key] = _resolved(parser, key, unrecorded)
    for key in COMPONENTS:
        raw = parser.get(key)
        if not isinstance(raw, Mapping) or not isinstance(raw.get("_target_"), str):
            continue
        component = {"_target_": raw["_target_"]}
        for arg in raw:
            if not str(arg).startswith("_"):
                component[arg] = _resolved(parser, f"{key}#{arg}", unrecorded)
        settings[key] = component
    return settings, unrecorded


def record_run(output_dir: str | os.PathLike, datalists: Mapping | None = None,
               argv: Sequence[str] | None = None) -> dict | None:
    """Write ``<output_dir>/run.json`` (atomically): what rebuilds this ``monai.bundle run`` command's model.

    Called once the run really starts (:class:`medbundle.handlers.RunRecord` at the trainer's ``STARTED``), so
    a command that fails at start-up never touches the record of an earlier run in the same folder. The config
    files and overrides are read from the command line (``--config_file`` as a path or a list of paths, every
    other ``--key value`` an override, parsed as Python literals where they are one, as ``monai.bundle`` does).
    Nothing is written on ranks other than 0, or when the process was not started by ``monai.bundle run``.

    Args:
        output_dir: the run folder.
        datalists: the run's data lists, for the fingerprint; None: no fingerprint.
        argv: the command's arguments; default ``sys.argv[1:]``.

    Returns:
        the record written, or None.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not is_rank_zero() or argv[:1] != ["run"]:
        return None
    files, overrides = _command_line(argv)
    files = [os.path.abspath(f) for f in files]
    parser = bundle_parser(files, overrides, overrides.get("meta_file"))
    settings, unrecorded = _settings(parser)
    if unrecorded:
        logger.warning("run record: could not record %s as plain values; a rebuild of this run will need them given",
                       ", ".join(f"{k} ({v})" for k, v in unrecorded.items()))
    record = {
        "format": FORMAT,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_file": files,
        "overrides": _jsonable(overrides),
        "settings": settings,
        "unrecorded": unrecorded,
        "versions": package_versions(),
        "data": None if datalists is None else data_fingerprint(datalists),
        "config": _jsonable(parser.get()),
    }
    atomic_write_json(Path(output_dir) / RECORD_NAME, record)
    logger.info("run record written to %s", Path(output_dir) / RECORD_NAME)
    return record


def read_record(folder: str | os.PathLike, required: bool = True) -> dict | None:
    """Read a run folder's ``run.json`` as plain JSON data (nothing in it is evaluated).

    Args:
        folder: the run folder.
        required: raise when there is no record; else return None.

    Raises:
        RunRecordError: no record (when required), a file that is not JSON, or a record without ``settings`` (one
            written before medbundle recorded them).
    """
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        if not required:
            return None
        raise RunRecordError(f"{path}: not found, so {folder} is not a medbundle training run (train.json writes "
                             "run.json there when training starts). Give the --output_dir of a training run.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunRecordError(f"{path}: not a readable run record ({e}). Retrain into this folder to write it again.")
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        if not required:
            return None
        raise RunRecordError(f"{path}: no recorded settings (written by an older medbundle, or not a run record); "
                             "retrain to write a complete record.")
    return record
