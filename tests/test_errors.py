"""User errors reported as one last line (the traceback in a log file); bugs with their full traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import medbundle.errors as errors
from medbundle.data.errors import DataError
from medbundle.errors import CheckpointError, OptionError, excepthook, set_run_folder, user_error

PACKAGE = Path(errors.__file__).resolve().parent


def _raise(exc: BaseException, wrap: bool = True) -> BaseException:
    """``exc`` raised and wrapped as MONAI wraps a failing expression; the outer exception."""
    try:
        try:
            raise exc
        except BaseException as inner:
            if not wrap:
                raise
            raise RuntimeError("Failed to evaluate ConfigExpression: '$...'") from inner
    except BaseException as outer:
        return outer


def _raised_in(filename: str, code: str) -> BaseException:
    try:
        exec(compile(code, filename, "exec"), {})
    except BaseException as e:
        return _raise(e)
    raise AssertionError("no exception")


@pytest.fixture(autouse=True)
def _no_run_folder():
    yield
    set_run_folder(None)


def test_wrapped_user_errors_are_found():
    for exc in (OptionError("--epochs 0: bad"), DataError("/d/Train.mat: bad"), FileNotFoundError("no model at /x")):
        assert user_error(_raise(exc)) is exc


def test_the_outermost_user_error_is_reported_not_the_low_level_cause():
    """medbundle re-raises a KeyError as a ValueError saying what to do: that one is the message."""
    outer = _raised_in(str(PACKAGE / "fake.py"), "try:\n {}['x']\nexcept KeyError as e:\n raise ValueError('metadata.json: say what to do') from e")
    found = user_error(outer)
    assert isinstance(found, ValueError) and str(found) == "metadata.json: say what to do"


def test_value_error_of_other_code_is_a_bug():
    assert user_error(_raised_in("/somewhere/else.py", "raise ValueError('x')")) is None
    assert user_error(_raised_in(str(PACKAGE / "fake.py"), "raise ValueError('x')")) is not None
    assert user_error(_raise(ZeroDivisionError("x"))) is None
    assert user_error(_raise(KeyError("x"))) is None


def _mismatch(saved: int, expected: int, features: int = 8) -> BaseException:
    from medbundle.networks import FiveBlockCNN

    ckpt = FiveBlockCNN(num_classes=saved, features=(features,) * 5, dense=8).state_dict()
    net = FiveBlockCNN(num_classes=expected, features=(8,) * 5, dense=8)

    class CheckpointLoader:  # as MONAI's: the path in load_path
        load_path = "/runs/other/models/model.pt"

        def __call__(self):
            net.load_state_dict(ckpt)

    return _raise(_catch(CheckpointLoader()))


def _catch(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:
        return e
    raise AssertionError("no exception")


def test_checkpoint_of_another_bundle_names_checkpoint_and_classes():
    set_run_folder(None, lambda: ["NonDemented", "VeryMild", "Mild", "Moderate"])
    found = user_error(_mismatch(saved=3, expected=4))
    assert isinstance(found, CheckpointError)
    text = str(found)
    assert text.startswith("/runs/other/models/model.pt: the checkpoint's model has 3 classes but this bundle "
                           "expects 4 (NonDemented, VeryMild, Mild, Moderate)")
    assert "--ckpt_path" in text


def test_checkpoint_of_another_network_says_which_options():
    found = user_error(_mismatch(saved=3, expected=3, features=16))
    assert isinstance(found, CheckpointError)
    assert "saved from a different network" in str(found) and "--network_def" in str(found)


def _report(capsys, exc: BaseException) -> tuple[list[str], str]:
    excepthook(type(exc), exc, exc.__traceback__)
    captured = capsys.readouterr()
    return [line for line in captured.err.splitlines() if line.strip()], captured.out


def test_user_error_ends_with_one_line_and_logs_the_traceback_in_the_run_folder(tmp_path, capsys):
    set_run_folder(lambda: tmp_path / "run")
    lines, _ = _report(capsys, _raise(OptionError("unknown key 'epohcs' (--epohcs 3): did you mean 'epochs'?")))
    assert lines[-1] == "OptionError: unknown key 'epohcs' (--epohcs 3): did you mean 'epochs'?"
    log = tmp_path / "run" / "error.log"
    assert str(log) in lines[-2]
    text = log.read_text()
    assert "Failed to evaluate ConfigExpression" in text and "Traceback" in text
    assert len(lines) <= 3


def test_multi_line_messages_become_one_line(tmp_path, capsys):
    set_run_folder(lambda: tmp_path)
    lines, _ = _report(capsys, _raise(DataError("/d/x.mat: bad\n  labels\tmissing")))
    assert lines[-1] == "DataError: /d/x.mat: bad labels missing"


def test_other_ranks_log_apart(tmp_path, capsys, monkeypatch):
    set_run_folder(lambda: tmp_path)
    monkeypatch.setenv("RANK", "1")
    lines, _ = _report(capsys, _raise(OptionError("x")))
    assert (tmp_path / "error.rank1.log").is_file() and not (tmp_path / "error.log").exists()


@pytest.mark.parametrize("folder", [None, "file", "raises"])
def test_without_a_usable_run_folder_the_log_is_a_temporary_file(tmp_path, capsys, folder):
    afile = tmp_path / "afile"
    afile.write_text("x")
    getters = {None: None, "file": lambda: afile / "sub", "raises": lambda: 1 / 0}
    set_run_folder(getters[folder])
    lines, _ = _report(capsys, _raise(FileNotFoundError("no trained model at /x/model.pt: run train.json first")))
    assert lines[-1] == "FileNotFoundError: no trained model at /x/model.pt: run train.json first"
    log = Path(lines[-2].split("full traceback in ")[1].split(")")[0])
    assert log.is_file() and log.parent != afile and "Traceback" in log.read_text()
    log.unlink()


def test_bugs_keep_their_full_traceback(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(errors, "_PREVIOUS_HOOK", {"hook": lambda *a: seen.append(a)})
    exc = _raise(ZeroDivisionError("division by zero"))
    excepthook(type(exc), exc, exc.__traceback__)
    assert seen and seen[0][1] is exc
    assert capsys.readouterr().err == ""


def test_install_keeps_the_hook_it_replaces(monkeypatch):
    previous = lambda *a: None  # noqa: E731
    monkeypatch.setattr(sys, "excepthook", previous)
    monkeypatch.setattr(errors, "_PREVIOUS_HOOK", {"hook": sys.__excepthook__})
    errors.install_excepthook()
    errors.install_excepthook()
    assert sys.excepthook is excepthook and errors._PREVIOUS_HOOK["hook"] is previous
