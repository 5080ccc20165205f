"""Command-line options of bundle commands: booleans that mean what they say, and a start-up check of every override.

``python -m monai.bundle run ... --resume false`` hands the *string* ``'false'`` to the config (``fire`` only
converts ``True``/``False``), and a non-empty string is true. Two defences:

- components coerce their boolean arguments with :func:`as_bool` (``true/false/yes/no/on/off/1/0``, any case);
- :func:`check_command_line`, the first item of every bundle's ``initialize`` list, reads the config files and the
  overrides of the command line *without evaluating anything* and stops with one line (:class:`OptionError`) on an
  unknown key (naming close matches), a value that is not a boolean where the config's default is one, or a value
  out of range (:data:`VALUE_RULES`). The boolean overrides are then written as real booleans into the running
  config, so that MONAI's own components (``shuffle``, ``clip``, ...) get them too. It also installs
  :func:`medbundle.errors.excepthook`.
"""

from __future__ import annotations

import ast

import difflib
import inspect
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from medbundle.errors import OptionError, install_excepthook, set_run_folder

__all__ = ["OptionError", "as_bool", "check_overrides", "check_command_line", "VALUE_RULES", "BOOLEAN_EXPRESSIONS",
           "BOOLEAN_OR_PATH"]

logger = logging.getLogger("medbundle.options")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
BOOLEANS_HINT = "pass true or false (also accepted: True/False, yes/no, on/off, 1/0)"
# keys whose default is an expression that yields a boolean (a bool default is recognised by itself)
BOOLEAN_EXPRESSIONS = ("demo_data", "is_not_rank0")
# keys that take a boolean or a file path (pretrained: true for installed weights, or a local state dict): a boolean
# word becomes a boolean, anything else stays a path for the component to check (it names a missing file)
BOOLEAN_OR_PATH = ("pretrained",)
# named parameters of MONAI's bundle commands (run(), create_workflow(), ConfigWorkflow): not config keys
_REFERENCE = re.compile(r"@([\w:#]+)")
_MONAI_ARGS = {"run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking", "args_file",
               "workflow_name", "workflow_type", "properties_path"}


def as_bool(value: Any, name: str = "value") -> bool:
    """``value`` as a boolean: ``True``/``False``, ``1``/``0``, or the words true/false, yes/no, on/off, 1/0.

    Anything else is an :class:`OptionError` naming ``name``: a typo must not silently mean ``True``.

    Args:
        value: the value given (from a config, or the command line, where ``--resume false`` is a string).
        name: the key or argument, for the message (e.g. ``"resume"``).
    """
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise OptionError(f"{name}={value!r} is not a boolean: {BOOLEANS_HINT}")


def _number(minimum: int, what: str, whole: bool = True) -> Callable[[str, Any], str | None]:
    kinds = (int,) if whole else (int, float)

    def rule(key: str, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, kinds) or not value >= minimum:
            return f"--{key} {value!r}: {what} must be a {'whole ' if whole else ''}number >= {minimum}"
        return None

    return rule


def _spatial_size(key: str, value: Any) -> str | None:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return f"--{key} {value!r}: the image size must be two whole numbers > 0, height and width, e.g. --{key} '[64, 64]'"
    return None


def _device(key: str, value: Any) -> str | None:
    import torch

    if str(value) == "auto":
        return None
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        return f"--{key} {value!r}: not a device; use auto, cpu, cuda or cuda:<index>"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return (f"--{key} {value}: CUDA is not available on this machine (no GPU found, or torch "
                    f"{torch.__version__} was built without CUDA); use --{key} cpu, or leave --{key} out (auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            return (f"--{key} {value}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                    f"numbered from 0; use --{key} cuda:0 or leave --{key} out (auto)")
    return None


def _folder(key: str, value: Any) -> str | None:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        return f"--{key} {value!r}: not a folder path; pass the folder to use (it is created when missing)"
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        return f"--{key} {value}: this is a file, not a folder; pass a folder (it is created when missing)"
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"--{key} {value}: cannot be created, {parent} is a file; pass a folder path"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--{key} {value}: cannot be written, no write permission in {parent}; pass a folder you can write"
    return None


# checks of an override's value, by key (applied where the key is one of the config's)
VALUE_RULES: dict[str, Callable[[str, Any], str | None]] = {
    "epochs": _number(1, "the number of training epochs"),
    "batch_size": _number(1, "the batch size"),
    "val_interval": _number(1, "the validation interval (epochs)"),
    "num_workers": _number(0, "the number of data loader processes"),
    "precise_bn_batches": _number(0, "the number of batch-norm re-estimation batches"),
    "early_stop_patience": _number(0, "the patience (validations)"),
    "tensorboard_gradcam_images": _number(0, "the number of Grad-CAM overlays"),
    "checkpoint_seconds": _number(0, "the least time between two full checkpoints (seconds)", whole=False),
    "spatial_size": _spatial_size,
    "device": _device,
    "output_dir": _folder,
}


def _split(key: str) -> list[str]:
    return key.replace("::", "#").split("#")


def _lookup(config: Any, key: str) -> tuple[bool, Any]:
    """Whether ``key`` (``a#b#0`` paths) is in ``config``, and its value there."""
    node = config
    for part in _split(key):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _ids(config: Any, prefix: str = "") -> list[str]:
    """Every key path of ``config`` (``a``, ``a#b``, ``a#0#c``), descriptions (``_*_desc_``) left out."""
    out = []
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else []
    for k, v in items:
        if isinstance(k, str) and k.endswith("_desc_"):
            continue
        key = f"{prefix}#{k}" if prefix else str(k)
        out.append(key)
        out.extend(_ids(v, key))
    return out


def _references(config: Any) -> set[str]:
    """The ids that ``config`` refers to (``@key``, ``@a#b`` in references and expressions)."""
    if isinstance(config, dict):
        return set().union(*(_references(v) for v in config.values())) if config else set()
    if isinstance(config, list):
        return set().union(*(_references(v) for v in config)) if config else set()
    if isinstance(config, str) and "@" in config:
        return {m.replace("::", "#") for m in _REFERENCE.findall(config)}
    return set()


def _unknown_key(config: dict, key: str, value: Any, files: list[str]) -> str:
    parts = _split(key)
    parent_found, parent = _lookup(config, "#".join(parts[:-1])) if len(parts) > 1 else (True, config)
    if len(parts) > 1 and parent_found and isinstance(parent, dict):
        prefix = "#".join(parts[:-1]) + "#"
        matches = [prefix + m for m in difflib.get_close_matches(parts[-1], [str(k) for k in parent], n=3)]
    else:
        matches = difflib.get_close_matches(key, _ids(config) + sorted(_MONAI_ARGS), n=3)
    names = ", ".join(Path(f).name for f in files)
    if matches:
        hint = "did you mean " + " or ".join(repr(m) for m in matches) + "?"
    else:
        hint = f"no such key in {names}; see the key table in the bundle's docs/README.md"
    return f"unknown key {key!r} (--{key} {value!r}): {hint}"


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.strip()[:1] in ("$", "@", "%")


def check_overrides(config: dict, overrides: dict, files: list[str] | None = None) -> dict[str, bool]:
    """Check command-line overrides against the merged config files, without evaluating anything.

    Each key must be in ``config`` (``a#b`` paths too), be referred to by it (``@key``) or be one of MONAI's own
    run options (``--tracking mlflow`` adds the keys of MONAI's MLflow settings); where the config's
    default is a boolean (or ``"auto"``, e.g. ``amp``; or a key of :data:`BOOLEAN_EXPRESSIONS`; or a
    ``_disabled_`` switch) the value must be a recognised boolean (:func:`as_bool`); the values of the keys in
    :data:`VALUE_RULES` must pass their rule. References and expressions (``@x``, ``$...``, ``%file``) are not checked.

    Args:
        config: the merged config files (``ConfigParser.load_config_files``), with ``_meta_`` where known.
        overrides: ``{key: value}`` as the command line gives them.
        files: the config files, for the message.

    Returns:
        The boolean overrides as real booleans, ``{key: bool}``.

    Raises:
        OptionError: every problem found, in one line.
    """
    problems, booleans = [], {}
    allowed = set(_MONAI_ARGS)
    if overrides.get("tracking"):
        from monai.bundle.utils import DEFAULT_EXP_MGMT_SETTINGS

        allowed |= set(DEFAULT_EXP_MGMT_SETTINGS.get(str(overrides["tracking"]), {}).get("configs", {}))
    allowed |= _references(config)  # a key the configs refer to but leave to the command line (``@kill_at``)
    for key, value in overrides.items():
        key = str(key)
        if key.replace("::", "#") in allowed and not _lookup(config, key)[0]:
            continue
        found, default = _lookup(config, key)
        if not found:
            problems.append(_unknown_key(config, key, value, files or []))
            continue
        if _is_expression(value):
            continue
        name = _split(key)[-1]
        if isinstance(default, bool) or name == "_disabled_" or key in BOOLEAN_EXPRESSIONS or (
            default == "auto" and value != "auto" and key not in VALUE_RULES
        ):
            try:
                booleans[key] = as_bool(value, f"--{key}")
            except OptionError:
                if key in BOOLEAN_OR_PATH:
                    continue
                also = " or auto" if default == "auto" else ""
                problems.append(f"--{key} {value!r}: not a boolean; {BOOLEANS_HINT}{also}")
            continue
        rule = VALUE_RULES.get(key)
        problem = rule(key, value) if rule is not None else None
        if problem:
            problems.append(problem)
    if problems:
        raise OptionError("; ".join(problems))
    return booleans


def _read_config(files: list[str], overrides: dict) -> dict:
    from monai.bundle import ConfigParser

    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise OptionError(f"--config_file: no config file at {', '.join(missing)}; check the path(s)")
    config = ConfigParser.load_config_files(files)
    meta = overrides.get("meta_file") or str(Path(files[0]).parent / "metadata.json")
    meta_files = [meta] if isinstance(meta, str) else list(meta)
    if all(Path(m).is_file() for m in meta_files):
        config["_meta_"] = ConfigParser.load_config_files(meta_files)
    return config


def _running_parser() -> Any:
    """The ``ConfigParser`` of the running bundle command (found on the call stack), or None."""
    from monai.bundle import ConfigParser

    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigParser):
            return owner
        frame = frame.f_back
    return None


def _set_booleans(parser: Any, booleans: dict[str, bool]) -> None:
    """Write the boolean overrides as booleans into ``parser``'s config before anything reads them."""
    for key, value in booleans.items():
        parts = _split(key)
        found, container = _lookup(parser.config, "#".join(parts[:-1])) if len(parts) > 1 else (True, parser.config)
        if not found:
            continue
        index = int(parts[-1]) if isinstance(container, list) else parts[-1]
        container[index] = value  # the same objects as the parsed items of every enclosing component
        item_id = "#".join(parts)
        item = parser.ref_resolver.items.get(item_id)
        if item is not None and item_id not in parser.ref_resolver.resolved_content:
            item.update_config(value)


def check_command_line(argv: list[str] | None = None) -> None:
    """Start-up check of a bundle command: each ``--key value`` is a key of the config files, with a sound value.

    The first item of each bundle config's ``initialize`` list. Installs :func:`medbundle.errors.excepthook`
    (user errors end the output with one line; the traceback goes to ``<output_dir>/error.log``), then checks
    the overrides with :func:`check_overrides` and makes the boolean ones real booleans in the running config
    (the ``ConfigParser`` found on the call stack). Does nothing when the process is not a ``monai.bundle run``
    command (e.g. a config parsed from Python) and no ``argv`` is given.

    Args:
        argv: the command's arguments; default ``sys.argv[1:]``.

    Raises:
        OptionError: an unknown key, a value that is not a boolean where one is expected, or a value out of range.
    """
    if argv is None and sys.argv[1:2] != ["run"]:
        return
    overrides: dict = {}
    parser = _running_parser()
    install_excepthook()
    set_run_folder(lambda: _run_folder(parser, overrides), lambda: parser.get_parsed_content("class_names"))
    files, overrides = _command_line(argv)
    if overrides.get("args_file"):
        from monai.bundle import ConfigParser

        defaults = ConfigParser.load_config_file(overrides["args_file"])
        files = files or _command_line(["--config_file", str(defaults.pop("config_file", ""))])[0]
        overrides = {**{k: v for k, v in defaults.items() if k != "config_file"}, **overrides}
    files = [f for f in files if f]
    if not files:
        return
    booleans = check_overrides(_read_config(files, overrides), overrides, files)
    if parser is not None and booleans:
        _set_booleans(parser, booleans)


def _command_line(argv: list[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """The ``--config_file`` paths and the other ``--key value`` / ``--key=value`` options of a bundle command.

    Values are parsed as Python literals where they are one (``"[64, 64]"``, ``"2"``), as ``monai.bundle`` does;
    ``--config_file`` may be one path, a list (quoted or not), or comma-separated paths. Words that are not options (``run``)
    are skipped.

    Args:
        argv: the arguments; default ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if argv is None else argv
    args: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            elif not eq:
                value = "True"
            try:
                args[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                args[key] = value
        i += 1
    files = args.pop("config_file", [])
    if isinstance(files, str):  # one path, "a,b", or a list literal that is not Python ("[a.json, b.json]")
        files = files.strip().strip("[]").split(",")
    files = [str(f).strip().strip("'\"") for f in files]
    return files, args


def _run_folder(parser: Any, overrides: dict) -> Any:
    value = overrides.get("output_dir")
    if isinstance(value, str) and not _is_expression(value) and _folder("output_dir", value) is None:
        return value
    if parser is None or value is not None:
        return None
    folder = parser.get_parsed_content("output_dir")
    return folder if _folder("output_dir", folder) is None else None
