"""Errors a user causes, and how a bundle command reports them: one line at the end, the traceback in a log file.

A bundle command (``python -m monai.bundle run ...``) installs :func:`excepthook` from the first item of its
``initialize`` list (:func:`medbundle.options.check_command_line`). For a *user error* -- an :class:`OptionError`, a
:class:`~medbundle.data.DataError`, a ``FileNotFoundError``, a ``ValueError`` raised by medbundle's own code, or a
checkpoint that does not fit the network -- it prints a short message whose last line is that error's message (not
MONAI's ``Failed to evaluate ConfigExpression`` wrapper around it) and writes the full traceback to
``<output_dir>/error.log`` (a temporary file when there is no usable run folder), naming that file. Any other
exception is a bug: its full traceback is shown as usual.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

__all__ = ["OptionError", "CheckpointError", "user_error", "excepthook", "install_excepthook", "set_run_folder"]

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
# who knows the run folder of the running command (see set_run_folder); None: not known (a temporary file is used)
_RUN_FOLDER: dict[str, Callable[[], Any] | None] = {"get": None, "class_names": None}
_PREVIOUS_HOOK: dict[str, Callable] = {"hook": sys.__excepthook__}
_STATE_DICT_ERROR = "Error(s) in loading state_dict for"
_SIZE_MISMATCH = re.compile(
    r"size mismatch for ([^:]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from checkpoint, "
    r"the shape in current model is torch\.Size\(\[([\d, ]*)\]\)"
)


class OptionError(ValueError):
    """A bundle key given on the command line (or to a component) with an unknown name or a wrong value.

    The message names the key, says what is wrong and what to do, e.g. ``"--resume maybe: not a boolean; pass
    true or false"``.
    """


class CheckpointError(ValueError):
    """A checkpoint that does not fit the network the config builds (another bundle's model, other classes, other
    network options). The message names the checkpoint, what does not fit and what to do."""


def user_error(exc: BaseException) -> BaseException | None:
    """The error a user caused, found in ``exc`` or the exceptions it was raised from; None for a bug.

    The chain (``__cause__``, else ``__context__``) is walked from ``exc`` inwards, past wrappers such as MONAI's
    ``RuntimeError: Failed to evaluate ...``; the first user error found is returned (the outermost one: medbundle
    re-raises low-level errors with a message saying what to do). A checkpoint that does not fit the network
    (``load_state_dict``'s size mismatch or missing keys) comes back as an error saying which
    checkpoint and what to do (a :class:`CheckpointError`).

    Args:
        exc: the exception that stopped the command.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OptionError, FileNotFoundError)) or _is_data_error(current):
            return current
        if isinstance(current, ValueError) and _raised_by_medbundle(current):
            return current
        if isinstance(current, RuntimeError) and _STATE_DICT_ERROR in str(current):
            return CheckpointError(_checkpoint_mismatch(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def _is_data_error(exc: BaseException) -> bool:
    from medbundle.data.errors import DataError

    return isinstance(exc, DataError)


def _raised_by_medbundle(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and str(Path(frames[-1].filename).resolve()).startswith(_PACKAGE_DIR + os.sep)


def _checkpoint_mismatch(exc: RuntimeError) -> str:
    """One line for ``load_state_dict``'s error: which checkpoint, what does not fit, what to do."""
    text = str(exc)
    path = _checkpoint_path(exc.__traceback__) or "the checkpoint"
    mismatches = [(name, _shape(a), _shape(b)) for name, a, b in _SIZE_MISMATCH.findall(text)]
    missing = "Missing key(s)" in text or "Unexpected key(s)" in text
    outputs = {(a[0], b[0]) for _, a, b in mismatches if a and b and a[1:] == b[1:] and a[0] != b[0]}
    if mismatches and not missing and len(outputs) == 1 and all(a[1:] == b[1:] for _, a, b in mismatches):
        saved, expected = outputs.pop()
        names = _class_names()
        listed = f" ({', '.join(map(str, names))})" if names and len(names) == expected else ""
        return (
            f"{path}: the checkpoint's model has {saved} classes but this bundle expects {expected}{listed}: it was "
            "trained by another bundle or for other classes. Pass --ckpt_path with a model trained by this bundle's "
            "train.json (or the --output_dir of that training run), or run the bundle that trained it."
        )
    detail = "; ".join(f"{n} {list(a)} in the checkpoint, {list(b)} here" for n, a, b in mismatches[:2])
    detail = detail or ("its parameter names differ from this network's" if missing else text.splitlines()[0])
    return (
        f"{path}: the checkpoint was saved from a different network than this config builds ({detail}). Pass the "
        "network options it was trained with (the same --config_file overlays, --network_def#... and "
        "--spatial_size), or --ckpt_path with a model trained by this config."
    )


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.replace(" ", "").split(",") if s)


def _checkpoint_path(tb: TracebackType | None) -> str | None:
    """The file being loaded, read from the frames of ``tb`` (MONAI's ``CheckpointLoader.load_path``)."""
    path = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        owner = local.get("self")
        candidate = getattr(owner, "load_path", None) or local.get("load_path") or local.get("ckpt_path")
        if isinstance(candidate, (str, os.PathLike)):
            path = str(candidate)
        tb = tb.tb_next
    return path


def _class_names() -> list | None:
    try:
        getter = _RUN_FOLDER.get("class_names")
        return list(getter()) if getter is not None else None
    except Exception:
        return None


def set_run_folder(get_folder: Callable[[], Any] | None, get_class_names: Callable[[], Any] | None = None) -> None:
    """Say how :func:`excepthook` finds the running command's run folder (and class names), when it needs them.

    Args:
        get_folder: returns the run folder (``output_dir``); called only when a user error is reported. None, or
            a callable that fails or returns nothing usable: the traceback goes to a temporary file.
        get_class_names: returns the bundle's class names, for a checkpoint that does not fit.
    """
    _RUN_FOLDER["get"] = get_folder
    _RUN_FOLDER["class_names"] = get_class_names


def _log_file() -> Path:
    """Where the full traceback goes: ``<run folder>/error.log`` (``error.rank<N>.log`` on other ranks)."""
    rank = os.environ.get("RANK", "0")
    name = "error.log" if rank in ("", "0") else f"error.rank{rank}.log"
    try:
        folder = _RUN_FOLDER["get"]() if _RUN_FOLDER["get"] is not None else None
        if isinstance(folder, (str, os.PathLike)) and str(folder):
            folder = Path(folder).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            return folder / name
    except Exception:
        pass
    fd, path = tempfile.mkstemp(prefix="medbundle-error-", suffix=".log")
    os.close(fd)
    return Path(path)


def _write_log(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> Path | None:
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    for path in (_log_file(), None):
        try:
            if path is None:
                fd, name = tempfile.mkstemp(prefix="medbundle-error-", suffix=".log")
                os.close(fd)
                path = Path(name)
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` of bundle commands: user errors as one last line, bugs with their full traceback.

    Args:
        exc_type: the exception's type.
        exc: the exception that stopped the command.
        tb: its traceback.
    """
    cause = user_error(exc) if isinstance(exc, Exception) else None
    if cause is None:
        _PREVIOUS_HOOK["hook"](exc_type, exc, tb)
        return
    # a run folder held by another live run is not ours to write into: its traceback goes to a temporary file
    if type(cause).__name__ == "RunFolderLocked":
        set_run_folder(None)
    log = _write_log(exc_type, exc, tb)
    message = " ".join(str(cause).split()) or repr(cause)
    where = f"full traceback in {log}" if log is not None else "the traceback could not be written"
    sys.stdout.flush()
    sys.stderr.write(f"\nThe command stopped on a problem with its options, files or data ({where}):\n"
                     f"{type(cause).__name__}: {message}\n")
    sys.stderr.flush()


def install_excepthook() -> None:
    """Report user errors of this process with :func:`excepthook`; other exceptions go to the hook it replaces."""
    if sys.excepthook is not excepthook:
        _PREVIOUS_HOOK["hook"] = sys.excepthook
        sys.excepthook = excepthook
