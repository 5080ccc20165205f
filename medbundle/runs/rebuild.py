"""Runs that rebuild themselves: the settings and network of a run read back from its record, and the check that a
command does not contradict them.

Configs read a run's settings through :func:`recorded` (``"spatial_size": "$medbundle.runs.recorded(@output_dir,
'spatial_size', [64, 64])"``) and build its network with :func:`recorded_network`; :func:`check_run` (an
``initialize`` step) stops a command whose config files or command line give a value that contradicts the record.
The network is built from the record's plain keyword arguments, its ``_target_`` restricted to the networks
registered in :mod:`medbundle.networks`: nothing read from a record is ever evaluated.
"""

from __future__ import annotations

import logging
import os
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from medbundle.runs.bundle import _command_line, find_bundle_root
from medbundle.runs.record import RunRecordError, bundle_parser, plain_value, read_record

__all__ = ["recorded", "recorded_network", "build_network", "check_run", "run_parser", "BASE_CONFIGS",
           "IGNORED_NETWORK_ARGS"]

logger = logging.getLogger("medbundle.runs")

_MISSING = object()
# the bundle's own config files: a value they hold is a default that the record replaces; a value set by any other
# file (an overlay such as resnet50.json) or on the command line is given on purpose and must agree with the record
BASE_CONFIGS = ("train.json", "inference.json", "evaluate.json", "explain.json", "multi_gpu_train.json")
# network arguments that do not shape the trained model (the checkpoint holds its weights)
IGNORED_NETWORK_ARGS = ("pretrained",)


def _where(folder: str | os.PathLike, key: str) -> str:
    return f"{Path(folder) / 'run.json'}: settings.{key}"


def recorded(output_dir: str | os.PathLike, key: str, default: Any = _MISSING) -> Any:
    """The plain value of setting ``key`` recorded by the training run in ``output_dir``.

    Args:
        output_dir: the run folder.
        key: one of :data:`medbundle.runs.SETTINGS` (``"spatial_size"``, ``"class_names"``, ...).
        default: returned when the folder holds no record (or one without ``key``); omitted: that is an error.

    Raises:
        RunRecordError: no recorded value and no default, or a recorded value that is not plain data.
    """
    record = read_record(output_dir, required=False)
    value = None if record is None else record["settings"].get(key)
    if value is None:
        if default is _MISSING:
            raise RunRecordError(f"{_where(output_dir, key)}: not recorded (no complete run record in {output_dir}); "
                                 f"give the --output_dir of a training run, or --{key} on the command line")
        return default
    return plain_value(value, _where(output_dir, key))


def _builders() -> dict[str, Any]:
    """``{name: class or function}`` of the networks a record may name: the registered network classes exported by
    :mod:`medbundle.networks`, and its functions whose return annotation is one (``resnet50``)."""
    import medbundle.networks as networks
    from medbundle.networks.registry import _lookup

    builders = {}
    for name in networks.__all__:
        obj = getattr(networks, name)
        if isinstance(obj, type):
            cls = obj
        elif callable(obj):
            try:
                cls = typing.get_type_hints(obj).get("return")
            except Exception:
                cls = None
        else:
            cls = None
        if isinstance(cls, type) and issubclass(cls, nn.Module) and _lookup(cls) is not None:
            builders[name] = obj
    return builders


def build_network(network_def: Mapping[str, Any], where: str) -> nn.Module:
    """Instantiate a recorded ``network_def`` (``{"_target_": ..., <kwarg>: <plain value>}``).

    Args:
        network_def: the record's ``settings.network_def``.
        where: the record and key, for messages.

    Raises:
        RunRecordError: a target that is not a registered medbundle network, a value that is not plain data, or
            arguments the network does not take.
    """
    network_def = plain_value(dict(network_def), where)
    target = str(network_def.pop("_target_", ""))
    name = target.rsplit(".", 1)[-1]
    builders = _builders()
    if not target.startswith("medbundle.networks.") or name not in builders:
        raise RunRecordError(f"{where}: _target_ {target!r} is not a registered medbundle network (one of "
                             f"{sorted(builders)} under medbundle.networks); a record cannot name other code")
    kwargs = {k: v for k, v in network_def.items() if k not in IGNORED_NETWORK_ARGS}
    try:
        return builders[name](**kwargs)
    except (TypeError, ValueError) as e:
        raise RunRecordError(f"{where}: {target}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: "
                             f"{e}") from e


def recorded_network(output_dir: str | os.PathLike, default: nn.Module | None = None) -> nn.Module:
    """The network of the training run in ``output_dir``, built from its record (weights are not loaded).

    Args:
        output_dir: the run folder.
        default: the network to use when the folder holds no record (e.g. a checkpoint used outside its run
            folder); None: no record is an error.

    Raises:
        RunRecordError: no record and no default, or a record whose network cannot be rebuilt.
    """
    record = read_record(output_dir, required=default is None)
    spec = None if record is None else record["settings"].get("network_def")
    if spec is None:
        if default is None:
            reason = (record or {}).get("unrecorded", {})
            raise RunRecordError(f"{_where(output_dir, 'network_def')}: not recorded "
                                 f"{reason or ''}; retrain into this folder to record it")
        return default
    unrecorded = [k for k in record.get("unrecorded", {}) if k.startswith("network_def#")]
    if unrecorded:
        raise RunRecordError(f"{_where(output_dir, 'network_def')}: {unrecorded} could not be recorded as plain "
                             f"values ({record['unrecorded'][unrecorded[0]]}), so the network cannot be rebuilt")
    return build_network(spec, _where(output_dir, "network_def"))


def _given_network_args(argv: Sequence[str] | None) -> tuple[dict[str, Any], Any]:
    """The ``network_def`` arguments this command gives on purpose (in an overlay file or on the command line),
    resolved, and the parser of the command's config."""
    files, overrides = _command_line(argv)
    if not files:
        return {}, None
    full = bundle_parser(files, overrides, overrides.get("meta_file"))
    given = full.get("network_def")
    if not isinstance(given, Mapping):
        return {}, full
    from monai.bundle import ConfigParser

    base = ConfigParser()
    base_files = [f for f in files if Path(f).name in BASE_CONFIGS]
    if base_files:
        base.read_config(base_files)
    default = base.get("network_def") if "network_def" in base else {}
    default = default if isinstance(default, Mapping) else {}
    if given.get("_target_") != default.get("_target_"):
        keys = [k for k in given if not str(k).startswith("_") or k == "_target_"]
    else:
        keys = [k for k in given if not str(k).startswith("_") and (k not in default or given[k] != default[k])]
    keys = [k for k in keys if k not in IGNORED_NETWORK_ARGS]
    return {k: (given[k] if k == "_target_" else full.get_parsed_content(f"network_def#{k}")) for k in keys}, full


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_run(output_dir: str | os.PathLike, values: Mapping[str, Any] | None = None,
              argv: Sequence[str] | None = None) -> dict | None:
    """Stop a command on a training run whose settings contradict the run's record.

    Checked: each of ``values`` (the command's values of recorded settings, e.g. ``{"spatial_size":
    @spatial_size, "class_names": @class_names, "bundle_name": @bundle_name}``), and each ``network_def`` argument
    that an overlay file or the command line gives. Values the config reads from the record (see
    :func:`recorded`) agree by construction. A folder without a (complete) record is not checked.

    Args:
        output_dir: the run folder.
        values: ``{setting: value of this command}``.
        argv: the command's arguments; default ``sys.argv[1:]``.

    Returns:
        the record, or None when there is none.

    Raises:
        RunRecordError: one line naming the key, both values and the run folder.
    """
    record = read_record(output_dir, required=False)
    if record is None:
        logger.info("%s: no run record; the network and preprocessing are the config's", output_dir)
        return None
    settings = record["settings"]

    def contradiction(key: str, given: Any, trained: Any) -> RunRecordError:
        return RunRecordError(
            f"{key} = {given!r} contradicts the run in {output_dir}, trained with {key} = {trained!r} "
            f"({Path(output_dir) / 'run.json'}); drop --{key} (and overlays that set it): the run's own value is used")

    for key, value in (values or {}).items():
        if key in settings and settings[key] is not None and not _same(_plain(value), settings[key]):
            raise contradiction(key, _plain(value), settings[key])
    recorded_def = settings.get("network_def")
    if isinstance(recorded_def, Mapping):
        given, _ = _given_network_args(argv)
        for arg, value in given.items():
            trained = recorded_def.get(arg)
            if not _same(_plain(value), trained):
                raise contradiction(f"network_def#{arg}", _plain(value), trained)
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value



_BUNDLE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# recorded settings a rebuilt run's config takes as plain values (the preprocessing's and the data's)
PARSER_SETTINGS = ("spatial_size", "data_key", "label_key", "image_column", "dataset_dir", "max_pixels")


def _literal(value: Any, where: str) -> Any:
    """``value`` when it is plain data: a scalar, a list of plain data, or a mapping of plain data whose keys are
    plain names (``class_aliases``, ``finding_map``, ``row_filter``). A key a config would act on (``_target_`` and
    every other ``_``-key, an id path with ``#``, a ``$``/``@``/``%`` string) is refused: nothing is instantiated."""
    value = plain_value(value, where)
    if isinstance(value, list):
        return [_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or key.startswith("_") or "#" in key or key[:1] in "$@%":
                raise RunRecordError(f"{where}: a mapping with the key {key!r} where plain data belongs")
        return {k: _literal(v, f"{where}.{k}") for k, v in value.items()}
    return value


def run_parser(record: Mapping[str, Any], folder: str | os.PathLike, device: str = "auto"):
    """The config of a recorded run for rebuilding its preprocessing, classes, data lists and inferer.

    The config is the installed bundle's own ``configs/train.json`` (found by the recorded ``bundle_name``; the
    config files named in the record are not read), with the recorded plain settings (:data:`PARSER_SETTINGS` and
    the ``datalists`` arguments) as literal overrides, ``output_dir`` the run folder and ``device`` the given one.
    Nothing from the record is evaluated: a ``$``/``@``/``%`` string or a mapping there is refused.

    Args:
        record: the run's record (:func:`medbundle.runs.read_record`).
        folder: the run folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Raises:
        RunRecordError: a record without a usable bundle name, or with a value that is not plain data.
    """
    settings = record["settings"]
    name = plain_value(settings.get("bundle_name"), _where(folder, "bundle_name"))
    if not isinstance(name, str) or not _BUNDLE_NAME.match(name):
        raise RunRecordError(f"{_where(folder, 'bundle_name')}: {name!r} is not a bundle name")
    try:
        root = find_bundle_root(name)
    except FileNotFoundError as e:
        raise RunRecordError(f"{_where(folder, 'bundle_name')}: {e}") from e
    overrides: dict[str, Any] = {k: _literal(settings[k], _where(folder, k))
                                 for k in PARSER_SETTINGS if settings.get(k) is not None}
    datalists = settings.get("datalists")
    if isinstance(datalists, Mapping):
        for arg, value in datalists.items():
            if not str(arg).startswith("_") and arg not in ("output_dir", "class_names"):
                overrides[f"datalists#{arg}"] = _literal(value, _where(folder, f"datalists.{arg}"))
    overrides["output_dir"] = str(Path(folder))
    overrides["device"] = f"$medbundle.runtime.resolve_device({str(device)!r})"
    parser = bundle_parser([str(Path(root) / "configs" / "train.json")], {})
    known = {k: v for k, v in overrides.items() if k.split("#")[0] in parser and
             (not k.startswith("datalists#") or k.split("#", 1)[1] in (parser.get("datalists") or {}))}
    parser.update(known)
    return parser
